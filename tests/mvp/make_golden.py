"""Write tests/mvp/golden_tiny.npz from the official MvP code (sail-sg/mvp) on the CPU.

    python tests/mvp/make_golden.py /path/to/sail-sg/mvp        # a checkout (git archive HEAD)

The official model is built from configs/panoptic/best_model_config.yaml at the width of our
`tiny` variant (tests/mvp/golden.py TINY: PoseResNet-18, deconv 32, d 32, 4 heads, 4 points,
FFN 64, 2 layers, 4 persons, 3 views, 192 x 96), with numpy-regenerated random weights, and
run in eval mode at B = 1 through the pure-PyTorch deformable fallback: `Deformable` (the
CUDA extension) is stubbed: its `deform_forward` calls `deform_core_pytorch`; `mmcv`
and `easydict` are stubbed; `SetCriterion.to('cuda')` is bypassed. The fixture stores the
state_dict's names and shapes, the official `project_pose_batch`, `get_affine_transform`
and `get_rays_new` outputs, per-layer logits and normalised joints, the matcher's indices
and SetCriterion's losses for 3 people (one joint invisible). Nothing official is copied.
"""
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.mvp import golden  # noqa: E402


class EasyDict(dict):
    """What easydict.EasyDict does for the official config: nested attribute access."""
    def __init__(self, d=None, **kw):
        super().__init__()
        for k, v in dict(d or {}, **kw).items():
            self[k] = v

    def __setitem__(self, k, v):
        super().__setitem__(k, EasyDict(v) if isinstance(v, dict) and not isinstance(v, EasyDict) else v)

    __setattr__ = __setitem__

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e


def stub_modules():
    sys.modules["easydict"] = types.SimpleNamespace(EasyDict=EasyDict)
    mmcv = types.ModuleType("mmcv")
    mmcv.runner = types.SimpleNamespace(get_dist_info=lambda: (0, 1))
    sys.modules["mmcv"], sys.modules["mmcv.runner"] = mmcv, mmcv.runner
    sys.modules["Deformable"] = types.ModuleType("Deformable")


def import_official(checkout):
    """Its util/misc.py parses torchvision.__version__[:3] as a float ("0.2" for 0.2x) and would
    import helpers of torchvision < 0.7; the version is shown as 0.9 while importing."""
    import torchvision
    stub_modules()
    sys.path[:0] = [os.path.join(checkout, "lib"), checkout]
    version, torchvision.__version__ = torchvision.__version__, "0.9.0"
    try:
        from core import config as cfgmod
        import models.ops.functions.deform_func as deform_func
        import models.ops.modules.projattn as projattn
        import models.multi_view_pose_transformer as mvpt
        import utils.cameras as cams
        import utils.transforms as transforms
        import models.position_encoding as pe
    finally:
        torchvision.__version__ = version

    def fallback(value, shapes, level_start, loc, weights, im2col_step):
        return deform_func.deform_core_pytorch(value, [tuple(int(t) for t in s) for s in shapes], loc, weights)
    sys.modules["Deformable"].deform_forward = fallback     # both import paths (models. and lib.models.)
    mvpt.SetCriterion.to = lambda self, *a, **k: self
    mvpt.get_rays_new = rays_in_float64(pe.get_rays_new)
    return types.SimpleNamespace(cfgmod=cfgmod, mvpt=mvpt, cams=cams, transforms=transforms, pe=pe,
                                 lib_cams=sys.modules.get("lib.utils.cameras"))


def rays_in_float64(get_rays_new):
    """The official `get_rays_new` run in float64, rounded to float32 at the end. In float32 it
    adds the camera centre (|C| ~ 4000 mm) and subtracts it again, which leaves ~2e-4 of
    rounding noise in unit directions (measured: fixture `rays*_float32` vs these); the forward
    fixture uses the same formula without that noise, so that the comparison shows semantic
    differences only (ours computes R^T K^-1 [i, j, 1] directly)."""
    import torch

    def wrapped(*args, **kw):
        to_float = torch.Tensor.float
        default = torch.get_default_dtype()
        torch.Tensor.float = torch.Tensor.double
        torch.set_default_dtype(torch.float64)
        try:
            args = [a.clone().double() if isinstance(a, torch.Tensor) else a for a in args]   # it scales K in place
            return get_rays_new(*args, **kw).to(torch.float32)
        finally:
            torch.Tensor.float = to_float
            torch.set_default_dtype(default)
    return wrapped


def tiny_config(official, checkout):
    c = official.cfgmod
    c.update_config(os.path.join(checkout, "configs/panoptic/best_model_config.yaml"))
    cfg = c.config
    t = golden.TINY
    cfg.POSE_RESNET.NUM_LAYERS = t["depth"]
    cfg.POSE_RESNET.NUM_DECONV_FILTERS = [t["deconv"]] * 3
    cfg.DECODER.d_model, cfg.DECODER.nhead, cfg.DECODER.dec_n_points = t["d_model"], t["heads"], t["points"]
    cfg.DECODER.dim_feedforward, cfg.DECODER.num_decoder_layers = t["ffn"], t["layers"]
    cfg.DECODER.num_instance = t["persons"]
    cfg.DATASET.CAMERA_NUM = t["views"]
    cfg.NETWORK.IMAGE_SIZE = list(t["image_size"])
    cfg.MULTI_PERSON.SPACE_CENTER = list(t["space_center"])
    cfg.MULTI_PERSON.SPACE_SIZE = list(t["space_size"])
    cfg.NETWORK.PRETRAINED_BACKBONE = ""
    cfg.DECODER.use_loss_pose_perprojection = False    # computed but never weighted (not in weight_dict)
    return cfg


def official_meta(cams, poses, vis, image_size):
    """The collated per-view meta of JointsDataset (B = 1, float64)."""
    import torch
    from mvp import cameras
    center, scale, affine = cameras.crop_transform(golden.IMAGE_WH, image_size)
    n, j = 10, poses.shape[1]
    j3d = np.zeros((n, j, 3))
    j3d[:len(poses)] = poses
    v3d = np.zeros((n, j, 3))
    v3d[:len(poses)] = vis[..., None]
    meta = []
    for cam in cams:
        R, T = cam["R"], cam["T"].reshape(3, 1)
        intri = np.eye(3)
        intri[0, 0], intri[1, 1], intri[0, 2], intri[1, 2] = cam["f"][0], cam["f"][1], cam["c"][0], cam["c"][1]
        camd = {"R": R, "T": T, "standard_T": -R @ T, "fx": np.array(cam["f"][0]), "fy": np.array(cam["f"][1]),
                "cx": np.array(cam["c"][0]), "cy": np.array(cam["c"][1]), "k": cam["k"].reshape(3, 1),
                "p": cam["p"].reshape(2, 1)}
        m = {"num_person": np.array(len(poses)), "joints_3d": j3d, "joints_3d_vis": v3d, "roots_3d": j3d[:, 2],
             "center": center, "scale": scale, "camera": camd, "camera_Intri": intri, "camera_R": R,
             "camera_standard_T": camd["standard_T"], "affine_trans": affine}
        tens = lambda x: torch.as_tensor(np.asarray(x))[None]
        meta.append({k: ({kk: tens(vv) for kk, vv in v.items()} if isinstance(v, dict) else tens(v))
                     for k, v in m.items()})
    return meta


def main(checkout):
    import torch
    official = import_official(checkout)
    cfg = tiny_config(official, checkout)
    torch.manual_seed(0)
    model = official.mvpt.get_mvp(cfg, is_train=False)
    sd = model.state_dict()
    names, shapes = list(sd), [tuple(v.shape) for v in sd.values()]
    weights = golden.random_state_dict(names, shapes)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model.eval()

    images, cams, poses, vis = golden.inputs()
    meta = official_meta(cams, poses, vis, cfg.NETWORK.IMAGE_SIZE)
    views = [torch.from_numpy(images[:, v].transpose(0, 3, 1, 2).copy()) for v in range(images.shape[1])]
    with torch.no_grad():
        out = model(views=views, meta=meta)
        feats = model.backbone(torch.cat(views, 0), [0, 1, 2])[::-1]
    layers = out["aux_outputs"] + [{"pred_logits": out["pred_logits"], "pred_poses": out["pred_poses"]}]
    logits = np.stack([o["pred_logits"].numpy() for o in layers])
    coords = np.stack([o["pred_poses"]["outputs_coord"].numpy() for o in layers])

    # the head alone from given features, with a camera that sees nothing and one facing away
    hard = golden.hard_cameras(cams)
    hard_meta = official_meta(hard, poses, vis, cfg.NETWORK.IMAGE_SIZE)
    given = [torch.from_numpy(f) for f in golden.features()]

    class Given(torch.nn.Module):
        def forward(self, x, levels):
            return given[::-1]                      # the official forward reverses the list
    backbone, model.backbone = model.backbone, Given()
    with torch.no_grad():
        head = model(views=views, meta=hard_meta)
    model.backbone = backbone
    head_layers = head["aux_outputs"] + [{"pred_logits": head["pred_logits"], "pred_poses": head["pred_poses"]}]

    # the criterion on these outputs (matching per layer, focal + L1 in mm)
    meta[0]["joints_3d_norm"] = model.absolute2norm(meta[0]["joints_3d"].float())
    meta[0]["roots_3d_norm"] = model.absolute2norm(meta[0]["roots_3d"].float())
    with torch.no_grad():
        losses = model.criterion(out, meta)
        indices = [model.criterion.matcher(o, meta)[0] for o in layers]
    weight_dict = model.criterion.weight_dict
    total = float(sum(losses[k] * weight_dict[k] for k in losses if k in weight_dict))

    # cameras: projection (with distortion), the affine crop, rays per level
    pts = golden.project_points()
    cam_batch = {k: torch.stack([m["camera"][k] for m in meta], 1) for k in meta[0]["camera"]}
    projected = official.cams.project_pose_batch(torch.as_tensor(pts, dtype=torch.float32), cam_batch).numpy()
    center, scale = meta[0]["center"][0].numpy(), meta[0]["scale"][0].numpy()
    affine = official.transforms.get_affine_transform(center, scale, 0, cfg.NETWORK.IMAGE_SIZE)
    K = torch.stack([m["camera_Intri"] for m in meta], 1)
    A = torch.stack([m["affine_trans"] for m in meta], 1)
    K_crop = torch.bmm(A.flatten(0, 1), K.flatten(0, 1)).view(1, len(cams), 3, 3)
    R = torch.stack([m["camera_R"] for m in meta], 1)
    T = torch.stack([m["camera_standard_T"] for m in meta], 1)
    rays = [official.pe.get_rays_new(cfg.NETWORK.IMAGE_SIZE, f.shape[2], f.shape[3], K_crop.clone(), R, T).numpy()
            for f in feats]
    rays64 = [official.mvpt.get_rays_new(cfg.NETWORK.IMAGE_SIZE, f.shape[2], f.shape[3], K_crop.clone(), R, T).numpy()
              for f in feats]

    np.savez_compressed(
        os.path.join(HERE, "golden_tiny.npz"),
        head_logits=np.stack([o["pred_logits"].numpy() for o in head_layers]),
        head_coords=np.stack([o["pred_poses"]["outputs_coord"].numpy() for o in head_layers]),
        names=json.dumps(names), shapes=json.dumps(shapes), logits=logits, coords=coords,
        pooled=np.stack([f.mean((2, 3)).numpy() for f in feats], 1),          # [V, L, C]
        feat0_corner=feats[0][:, :, :4, :4].numpy(),
        losses=json.dumps({k: float(v) for k, v in losses.items()}), total_loss=total,
        indices=np.stack([np.stack([i.numpy(), j.numpy()]) for i, j in indices]),
        project_points=pts, projected=projected, affine=affine, center=center, scale=scale,
        **{f"rays{l}_float32": r.astype(np.float32) for l, r in enumerate(rays)},
        **{f"rays{l}": r.astype(np.float32) for l, r in enumerate(rays64)})
    print("layers", logits.shape, coords.shape, "total loss", total, losses)


if __name__ == "__main__":
    main(sys.argv[1])
