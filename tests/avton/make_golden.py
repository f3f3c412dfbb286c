"""Runs the OFFICIAL modules (sergeywong/cp-vton networks.py; switchablenorms/
DeepFashion_Try_On ACGPN_train/models/networks.py, tps_grid_gen.py) on CPU with the numpy
weights and inputs of tests/avton/golden.py and saves their outputs as golden_*.npz.

  git -C <cp-vton mirror> archive HEAD networks.py | tar -x -C /tmp/ref/cpvton
  git -C <DeepFashion_Try_On mirror> archive HEAD ACGPN_train | tar -x -C /tmp/ref/acgpn
  python tests/avton/make_golden.py /tmp/ref/cpvton /tmp/ref/acgpn

Patches, none of which changes a computation: `.cuda()` is the identity (CPU), `ipdb` is
a stub module, FeatureRegression's `x.view(x.size(0), -1)` reads `x.reshape(...)` (modern
torch hands it a non-contiguous conv output; same values), and F.grid_sample is called
with align_corners=True (PyTorch 0.4's only behaviour, which the references assumed).
"""
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from tests.avton import golden as G  # noqa: E402


def _cpu_only():
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    sys.modules.setdefault("ipdb", types.ModuleType("ipdb"))


def _load(module, state):
    names = list(module.state_dict())
    shapes = [tuple(v.shape) for v in module.state_dict().values()]
    sd = G.random_state_dict(names, shapes)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    return np.array(names), np.array([",".join(map(str, s)) for s in shapes])


def gmm_case(networks):
    opt = types.SimpleNamespace(grid_size=5, fine_height=G.GMM_SIZE[0], fine_width=G.GMM_SIZE[1])
    model = networks.GMM(opt)
    names, shapes = _load(model, None)
    h, w = G.GMM_SIZE
    a = torch.from_numpy(G.inputs("agnostic", (G.GMM_BATCH, 22, h, w)))
    c = torch.from_numpy(G.inputs("cloth", (G.GMM_BATCH, 3, h, w)))
    out = {"gmm_names": names, "gmm_shapes": shapes}
    with torch.no_grad():
        model.eval()
        grid, theta = model(a, c)
        warped = F.grid_sample(c, grid, padding_mode="border", align_corners=True)
        out.update(gmm_eval_theta=theta.numpy(), gmm_eval_grid=grid.numpy()[:, ::8, ::8],
                   gmm_eval_warped=warped.numpy()[:, :, ::8, ::8].transpose(0, 2, 3, 1))
        model.train()       # BatchNorm on the batch's statistics, as in training
        grid, theta = model(a, c)
        out.update(gmm_train_theta=theta.numpy(), gmm_train_grid=grid.numpy()[:, ::8, ::8])
    # the correlation alone, on small tensors (order of its channels)
    fa = torch.from_numpy(G.inputs("corr_a", (2, 5, 4, 3)))
    fb = torch.from_numpy(G.inputs("corr_b", (2, 5, 4, 3)))
    out["corr"] = networks.FeatureCorrelation()(fa, fb).numpy().transpose(0, 2, 3, 1)
    # the TPS grid generator alone: random offsets
    gen = networks.TpsGridGen(G.GMM_SIZE[0], G.GMM_SIZE[1], grid_size=5, use_cuda=False)
    theta = torch.from_numpy(G.random_theta(2))
    out["tps_cpvton_grid"] = gen(theta).numpy()[:, ::4, ::4]
    return out


def tom_case(networks):
    model = networks.UnetGenerator(25, 4, 6, ngf=G.TOM_NGF, norm_layer=nn.InstanceNorm2d)
    names, shapes = _load(model, None)
    x = torch.from_numpy(G.inputs("tom", (1, 25) + G.TOM_SIZE))
    with torch.no_grad():
        y = model(x)
    return {"tom_names": names, "tom_shapes": shapes, "tom_out": y.numpy().transpose(0, 2, 3, 1)}


def acgpn_cases(acgpn_root):
    sys.path.insert(0, os.path.join(acgpn_root, "ACGPN_train"))
    sys.path.insert(0, os.path.join(acgpn_root, "ACGPN_train", "models"))
    import networks as anet  # ACGPN's
    from tps_grid_gen import TPSGridGen
    out = {}
    refine = anet.Refine(G.REFINE_IN, G.REFINE_OUT)
    out["refine_names"], out["refine_shapes"] = _load(refine, None)
    x = torch.from_numpy(G.inputs("refine", (1, G.REFINE_IN) + G.REFINE_SIZE))
    with torch.no_grad():
        out["refine_out"] = refine.refine(x).numpy().transpose(0, 2, 3, 1)
    d = anet.MultiscaleDiscriminator(G.D_IN, G.D_NDF, 3, anet.get_norm_layer("instance"), False, 2, True)
    out["disc_names"], out["disc_shapes"] = _load(d, None)
    x = torch.from_numpy(G.inputs("disc", (1, G.D_IN) + G.D_SIZE))
    with torch.no_grad():
        feats = d(x)
    for i, scale in enumerate(feats):
        for j, f in enumerate(scale):
            out[f"disc_out_{i}_{j}"] = f.numpy().transpose(0, 2, 3, 1)
    # the grid constraint: BoundedGridLocNet.forward with fc2 = 0 and bias = atanh(points),
    # so its tanh output is exactly the given points
    cases = G.control_point_cases()
    import itertools
    r = 0.9
    target = torch.Tensor(list(itertools.product(np.arange(-r, r + 1e-5, 2 * r / 4), np.arange(-r, r + 1e-5, 2 * r / 4))))
    yy, xx = target.split(1, dim=1)
    target = torch.cat([xx, yy], 1)
    terms = []
    for pts in cases:
        loc = anet.BoundedGridLocNet(5, 5, torch.from_numpy(pts.astype(np.float64)))
        loc.eval()
        with torch.no_grad():
            coor, *t = loc(torch.zeros(1, 5, 256, 192))
        assert np.allclose(coor.numpy()[0], pts, atol=1e-5)
        terms.append([float(torch.as_tensor(v).mean()) * 0.1 for v in t])   # pix2pixHD_model's 0.1
    out["grid_points"], out["grid_terms"] = cases, np.array(terms, np.float64)
    # ACGPN's TPS (r^2 log r, Y slowest, grid +-0.9) through perturbed source points
    tps = TPSGridGen(G.GMM_SIZE[0], G.GMM_SIZE[1], target)
    src = target[None] + torch.from_numpy(G.random_theta(1, 50, 0.1).reshape(1, 25, 2))
    with torch.no_grad():
        out["tps_acgpn_source"] = src.numpy()
        out["tps_acgpn_grid"] = tps(src).numpy().reshape(1, G.GMM_SIZE[0], G.GMM_SIZE[1], 2)[:, ::4, ::4]
    return out


def sample_case():
    img = torch.from_numpy(G.inputs("sample_img", (2, 3) + G.SAMPLE_SIZE))
    grid = torch.from_numpy(1.3 * G.inputs("sample_grid", (2,) + G.SAMPLE_OUT + (2,)))
    return {"sample_" + p: F.grid_sample(img, grid, padding_mode=p, align_corners=True).numpy().transpose(0, 2, 3, 1)
            for p in ("zeros", "border")}


def dataset_case(cpvton_root):
    """cp_dataset.py CPDataset (stage GMM) on one synthetic sample written losslessly."""
    import tempfile

    from PIL import Image

    from avton import synthetic
    im, parse, kp, cloth, cmask, _ = synthetic.make_sample(*G.DATASET_SAMPLE)
    root = tempfile.mkdtemp()
    base = os.path.join(root, "train")
    for sub in ("image", "image-parse", "cloth", "cloth-mask", "pose"):
        os.makedirs(os.path.join(base, sub))
    for arr, sub, name in ((im, "image", "a_0.jpg"), (parse, "image-parse", "a_0.png"), (cloth, "cloth", "a_1.jpg"),
                           (cmask, "cloth-mask", "a_1.jpg")):
        Image.fromarray(arr).save(os.path.join(base, sub, name), format="PNG")   # lossless, any name
    import json
    json.dump({"people": [{"pose_keypoints": kp.reshape(-1).tolist()}]},
              open(os.path.join(base, "pose", "a_0_keypoints.json"), "w"))
    open(os.path.join(root, "train_pairs.txt"), "w").write("a_0.jpg a_1.jpg\n")
    sys.path.insert(0, cpvton_root)
    import cp_dataset
    opt = types.SimpleNamespace(dataroot=root, datamode="train", stage="GMM", data_list="train_pairs.txt",
                                fine_height=G.DATASET_SAMPLE[2], fine_width=G.DATASET_SAMPLE[3], radius=G.DATASET_RADIUS)
    here = os.getcwd()
    os.chdir(cpvton_root)      # it opens grid.png from the working directory
    try:
        ds = cp_dataset.CPDataset(opt)
        # torchvision 0.4's Normalize zipped its 3 means with the tensor's channels, so the
        # 1-channel shape and pose maps got (x - 0.5) / 0.5 too; modern torchvision refuses
        # the broadcast. Same arithmetic for any channel count:
        import torchvision.transforms as T
        ds.transform = lambda img: (T.ToTensor()(img) - 0.5) / 0.5
        item = ds[0]
    finally:
        os.chdir(here)
    return {"agnostic": item["agnostic"].numpy().transpose(1, 2, 0),
            "parse_cloth": item["parse_cloth"].numpy().transpose(1, 2, 0)}


def main(cpvton_root, acgpn_root):
    _cpu_only()
    torch.manual_seed(0)
    networks = types.ModuleType("networks")
    networks.__file__ = os.path.join(cpvton_root, "networks.py")
    src = open(networks.__file__).read()
    assert "x = x.view(x.size(0), -1)" in src
    exec(compile(src.replace("x = x.view(x.size(0), -1)", "x = x.reshape(x.size(0), -1)"),
                 networks.__file__, "exec"), networks.__dict__)
    cp = {**gmm_case(networks), **tom_case(networks), **sample_case()}
    ac = acgpn_cases(acgpn_root)
    np.savez_compressed(os.path.join(HERE, "golden_dataset.npz"), **dataset_case(cpvton_root))
    np.savez_compressed(os.path.join(HERE, "golden_cpvton.npz"), **cp)
    np.savez_compressed(os.path.join(HERE, "golden_acgpn.npz"), **ac)
    for f in ("golden_cpvton.npz", "golden_acgpn.npz", "golden_dataset.npz"):
        print(f, os.path.getsize(os.path.join(HERE, f)), "bytes")


if __name__ == "__main__":
    main(*(sys.argv[1:3] or ("/tmp/ref/cpvton", "/tmp/ref/acgpn")))
