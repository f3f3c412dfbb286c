"""Write tests/dualformer/golden_tiny.npz from the official DualFormer backbone.

    python tests/dualformer/make_golden.py --official /path/to/sail-sg/dualformer

Builds the official backbone (mmaction/models/backbones/dualformer.py, its three mmcv/mmaction
imports replaced in memory) and mmaction's I3DHead at a tiny width with random weights and
randomised BatchNorm statistics, runs a uint8 clip through it in eval and train mode, and
saves the state_dict, the clip and the outputs. The test converts the state_dict with
dualformer.convert and compares. The official code is read from the checkout, never copied.

Tiny geometry (the official code needs 224x224; with 4 frames every GP-MSA kind still occurs):
stage 0 fine (1,8,8) + coarse (1,7,7)->(1,2,2); stage 1 fine (1,4,4) + coarse (1,7,7)->(1,1,1);
stage 2 fine (1,2,2) only; stage 3 full global attention.
"""
import argparse
import os

import numpy as np

from dualformer.reference import Recognizer, load_official

TINY = dict(video_size=(4, 224, 224), embed_dims=[8, 16, 32, 64], num_heads=[1, 2, 2, 4], depths=[2, 2, 2, 2],
            qkv_bias=True, local_sizes=[(2, 7, 7)] * 4, fine_pysizes=[(2, 7, 7)] * 4, coarse_pysizes=[(2, 4, 4)] * 4)
NUM_CLASSES = 5
SCALE = 64.0  # the clip is stored as uint8; the model sees (clip - 128) / SCALE


def randomise(model, seed: int) -> None:
    """Perturb norms (default 1/0) and BatchNorm statistics so every tensor matters."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".lr.1." in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def main():
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="checkout of sail-sg/dualformer")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "golden_tiny.npz"))
    args = ap.parse_args()
    torch.manual_seed(0)
    model = Recognizer(load_official(args.official), NUM_CLASSES, **TINY)
    randomise(model, 1)
    clip = np.random.default_rng(0).integers(0, 256, (2, 4, 224, 224, 3), dtype=np.uint8)  # B T H W C
    x = torch.from_numpy((clip.astype(np.float32) - 128.0) / SCALE).permute(0, 4, 1, 2, 3)
    sd = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        feats, logits = model(x)
    model.train()  # BatchNorm on batch statistics; every dropout/drop-path rate is 0
    with torch.no_grad():
        feats_train, _ = model(x)
    stats = {"after_train/" + k: v.numpy().copy() for k, v in model.state_dict().items() if "running" in k}
    np.savez_compressed(args.out, clip=clip, features=feats.permute(0, 2, 3, 4, 1).numpy(), logits=logits.numpy(),
                        features_train=feats_train.permute(0, 2, 3, 4, 1).numpy(),
                        **{"sd/" + k: v for k, v in sd.items()}, **stats)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB, "
          f"{sum(v.size for k, v in sd.items() if 'running' not in k and 'num_batches' not in k):,} params)")


if __name__ == "__main__":
    main()
