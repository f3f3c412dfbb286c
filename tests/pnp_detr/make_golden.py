"""Write the golden fixtures of tests/pnp_detr from the official code.

    python tests/pnp_detr/make_golden.py /path/to/twangnh/pnp-detr [--detr /path/to/facebookresearch/detr]

golden_sampler.npz: the official `SortSampler` (models/transformer.py) in two settings on
three images of different valid sizes, plus DETR's nearest mask downsampling and sine
position embedding on a padded mask. golden_tiny.npz: the official PnP-DETR model
(models/detr.py `DETR` with the PnP `Transformer`) at the width of our `tiny` variant;
golden_tiny_detr.npz (with --detr): facebookresearch/detr's plain DETR at the same width.
Weights and images come from tests/pnp_detr/golden.py (numpy), so the fixtures hold only
names, shapes, the sampler's small inputs and the outputs. Run on the CPU with torch and
torchvision; the official code is imported from the checkouts, never copied.
"""
import argparse
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.pnp_detr import golden  # noqa: E402


def import_official(checkout: str) -> types.SimpleNamespace:
    """models.{transformer, backbone, position_encoding, detr} of a DETR-family checkout.
    Its util/misc.py parses torchvision.__version__[:3] as a float ("0.2" for 0.2x) and
    would import helpers of torchvision < 0.7; the version is shown as 0.9 while importing."""
    import torchvision
    for name in [m for m in sys.modules if m.split(".")[0] in ("models", "util", "datasets")]:
        del sys.modules[name]
    version, torchvision.__version__ = torchvision.__version__, "0.9.0"
    sys.path.insert(0, checkout)
    try:
        import models.backbone as backbone
        import models.detr as detr
        import models.position_encoding as position_encoding
        import models.transformer as transformer
        from util.misc import NestedTensor
    finally:
        sys.path.remove(checkout)
        torchvision.__version__ = version
    return types.SimpleNamespace(backbone=backbone, detr=detr, position_encoding=position_encoding,
                                 transformer=transformer, NestedTensor=NestedTensor)


def randomise(module, seed: int) -> tuple[list[str], list[tuple]]:
    import torch
    sd = module.state_dict()
    names, shapes = list(sd), [tuple(v.shape) for v in sd.values()]
    weights = golden.random_state_dict(names, shapes, seed)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return names, shapes


def sampler_fixture(official) -> dict:
    import torch
    import torch.nn.functional as F
    b, (h, w), d = len(golden.SAMPLER_VALID), golden.SAMPLER_GRID, golden.SAMPLER_DIM
    pad = ~golden.valid_pixels(golden.SAMPLER_VALID, (h, w))
    x = np.random.default_rng(1).standard_normal((b, d, h, w)).astype(np.float32)
    sine = official.position_encoding.PositionEmbeddingSine(d // 2, normalize=True)
    pos = sine(official.NestedTensor(torch.from_numpy(x), torch.from_numpy(pad)))
    pos = pos.flatten(2).permute(2, 0, 1)                                   # [L, B, d]
    out = {"x": x, "pad": pad, "pos": pos.permute(1, 0, 2).numpy()}
    for case, kw in golden.SAMPLER_CASES.items():
        sampler = official.transformer.SortSampler(golden.SAMPLER_ALPHA, d, **kw)
        names, shapes = randomise(sampler, seed=2)
        with torch.no_grad():
            src, reg, topk, mask, pos_out = sampler(torch.from_numpy(x), torch.from_numpy(pad).flatten(1), pos,
                                                    golden.SAMPLER_ALPHA)
        out.update({f"{case}/names": np.array(names), f"{case}/shapes": json.dumps(shapes),
                    f"{case}/tokens": src.permute(1, 0, 2).numpy(), f"{case}/token_pos": pos_out.permute(1, 0, 2).numpy(),
                    f"{case}/token_pad": mask.numpy(), f"{case}/topk": topk.numpy(),
                    f"{case}/sample_reg_loss": reg.numpy()})
    # mask downsampling and the position embedding on a canvas whose size the grid does not divide
    pixels = ~golden.valid_pixels(((123, 157), (100, 61), (77, 140)), (123, 157))
    cells = F.interpolate(torch.from_numpy(pixels)[None].float(), size=(h, w)).to(torch.bool)[0]
    out.update({"pixel_pad": pixels, "cell_pad": cells.numpy(),
                "cell_pos": sine(official.NestedTensor(torch.zeros(b, 1, h, w), cells)).permute(0, 2, 3, 1).numpy()})
    return out


def official_model(official, variant: str, alpha: float):
    """The official DETR (PnP-DETR's with a sampler, else plain DETR's) built like our
    VARIANTS[variant]: torchvision ResNet with FrozenBatchNorm2d, no pretrained download."""
    import torchvision
    from pnp_detr.model import VARIANTS
    t = {**VARIANTS["pnp_detr_r50"], **VARIANTS[variant]}
    t = {**dict(backbone_base_width=64, dilation=False, hidden_dim=256, num_heads=8, ffn_dim=2048,
                num_encoder_layers=6, num_decoder_layers=6, num_queries=100, use_sampler=True), **t}
    resnet = torchvision.models.resnet.ResNet(
        torchvision.models.resnet.Bottleneck, list(t["backbone_layers"]), width_per_group=t["backbone_base_width"],
        replace_stride_with_dilation=[False, False, t["dilation"]], norm_layer=official.backbone.FrozenBatchNorm2d)
    backbone = official.backbone.Joiner(official.backbone.BackboneBase(resnet, True, 2048, False),
                                        official.position_encoding.PositionEmbeddingSine(t["hidden_dim"] // 2,
                                                                                         normalize=True))
    backbone.num_channels = 2048
    kw = dict(d_model=t["hidden_dim"], nhead=t["num_heads"], num_encoder_layers=t["num_encoder_layers"],
              num_decoder_layers=t["num_decoder_layers"], dim_feedforward=t["ffn_dim"], dropout=0.1,
              normalize_before=False, return_intermediate_dec=True)
    if t["use_sampler"]:
        kw.update(sample_topk_ratio=alpha, score_pred_net="2layer-fc-256", kproj_net="1layer-fc",
                  unsample_abstract_number=t["num_pool_tokens"])
    transformer = official.transformer.Transformer(**kw)
    return official.detr.DETR(backbone, transformer, num_classes=91, num_queries=t["num_queries"], aux_loss=True)


def run_official(model, official, images: np.ndarray, pad: np.ndarray, alpha: float, with_sampler: bool) -> dict:
    """Eval-mode outputs of every decoder layer and the encoder memory (batch-first)."""
    import torch
    model.eval()
    captured = {}
    hooks = [model.transformer.encoder.register_forward_hook(lambda m, i, o: captured.update(memory=o)),
             model.transformer.encoder.register_forward_pre_hook(
                 lambda m, args, kw: captured.update(memory_pad=kw["src_key_padding_mask"]), with_kwargs=True)]
    samples = official.NestedTensor(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(pad))
    with torch.no_grad():
        out = model(samples, alpha) if with_sampler else model(samples)
    for h in hooks:
        h.remove()
    layers = out["aux_outputs"] + [out]
    result = {"pred_logits": np.stack([o["pred_logits"].numpy() for o in layers]),
              "pred_boxes": np.stack([o["pred_boxes"].numpy() for o in layers]),
              "memory": captured["memory"].permute(1, 0, 2).numpy(), "memory_pad": captured["memory_pad"].numpy()}
    if with_sampler:
        result["sample_reg_loss"] = out["sample_reg_loss"].numpy()
    return result


def model_fixture(official, with_sampler: bool) -> dict:
    model = official_model(official, "tiny" if with_sampler else "tiny_detr", golden.MODEL_ALPHA)
    names, shapes = randomise(model, golden.MODEL_SEED)
    images = golden.random_images(golden.MODEL_VALID, golden.MODEL_CANVAS, golden.MODEL_SEED)
    pad = ~golden.valid_pixels(golden.MODEL_VALID, golden.MODEL_CANVAS)
    out = run_official(model, official, images, pad, golden.MODEL_ALPHA, with_sampler)
    return {"names": np.array(names), "shapes": json.dumps(shapes), **out}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pnp_detr", help="checkout of twangnh/pnp-detr")
    ap.add_argument("--detr", help="checkout of facebookresearch/detr (plain-DETR fixture)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    official = import_official(os.path.abspath(args.pnp_detr))
    np.savez_compressed(os.path.join(HERE, "golden_sampler.npz"), **sampler_fixture(official))
    np.savez_compressed(os.path.join(HERE, "golden_tiny.npz"), **model_fixture(official, True))
    if args.detr:
        official = import_official(os.path.abspath(args.detr))
        np.savez_compressed(os.path.join(HERE, "golden_tiny_detr.npz"), **model_fixture(official, False))
    for name in ("golden_sampler.npz", "golden_tiny.npz", "golden_tiny_detr.npz"):
        path = os.path.join(HERE, name)
        if os.path.exists(path):
            print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
