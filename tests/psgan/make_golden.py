"""Golden fixtures from the OFFICIAL PSGAN code (wtjiang98/PSGAN), run beside ours:

  git -C <mirror> archive | tar x -C /tmp/psgan_off     # the official repo (never committed here)
  python tests/psgan/make_golden.py /tmp/psgan_off tests/psgan/golden.npz

What it runs (CPU, torch >= 2: the torchvision VGG imports of net.py are stubbed, `.cuda()`
in ops/histogram_matching.py is a no-op and `.cpu()` copies as it does from a GPU; nothing
else of the official code is touched):
- PreProcess.process on two synthetic faces (psgan/synthetic.py, loaded by path) at 256²:
  masks and four channels of the diffs;
- Generator (full size: the official code fixes 64 channels and a 64x64 bottleneck) with
  seeded NumPy weights (tests/psgan/golden.py) on seeded images: γ̃, β̃ (ret=True), the
  two-pass output (Solver.test) at stride 2, and the one-pass output's distance to it;
- Discriminator(conv_dim=4) with torch's init under manual_seed(0): its state_dict, two
  forwards (the SN u/v change in between) at 64², and u after them;
- HistogramLoss on random masked 32x32 images, called with 3-D masks (the op on the masked
  pixels) and with the 4-D masks solver.py passes (which index row 0; see psgan/losses.py).
"""
import importlib.util
import os
import sys
import types

import numpy as np


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(official: str, out: str):
    here = os.path.dirname(os.path.abspath(__file__))
    synthetic = _load(os.path.join(here, "..", "..", "psgan", "synthetic.py"), "_synthetic")
    golden = _load(os.path.join(here, "golden.py"), "_golden")
    sys.path.insert(0, official)
    import torch
    import torchvision.models.vgg as tvgg
    tvgg.model_urls = getattr(tvgg, "model_urls", {})
    tvgg.load_state_dict_from_url = getattr(tvgg, "load_state_dict_from_url", None)
    pkg = types.ModuleType("psgan")                      # the official package without its __init__
    pkg.__path__ = [os.path.join(official, "psgan")]
    sys.modules["psgan"] = pkg
    sys.modules["faceutils"] = types.ModuleType("faceutils")   # dlib / BiSeNet: not needed by process()
    torch.Tensor.cuda = lambda self, *a, **k: self
    from psgan import net
    from psgan.preprocess import PreProcess
    from ops.histogram_loss import HistogramLoss

    torch.set_grad_enabled(False)
    res = {}
    # ---------------------------------------------------------------- preprocess
    cfg = types.SimpleNamespace(
        DATA=types.SimpleNamespace(IMG_SIZE=256),
        PREPROCESS=types.SimpleNamespace(LANDMARK_POINTS=68, UP_RATIO=0.6 / 0.85, DOWN_RATIO=0.2 / 0.85,
                                         WIDTH_RATIO=0.2 / 0.85, LIP_CLASS=[7, 9], FACE_CLASS=[1, 6]))
    pre = PreProcess(cfg, need_parser=False)
    rng = np.random.default_rng(0)
    segs, lmss, masks, diffs = [], [], [], []
    for makeup in (False, True):
        _, seg, lms = synthetic.face(rng, 256, makeup)
        m, d = pre.process(torch.from_numpy(seg.astype(np.float32))[None, None], lms)
        segs.append(seg), lmss.append(lms), masks.append(m), diffs.append(d)
    res["seg"], res["lms"] = np.stack(segs), np.stack(lmss)
    res["masks"] = np.stack([m.numpy()[:, 0] for m in masks]).astype(np.uint8)          # [2, 3, 256, 256]
    channels = np.array([0, 40, 67, 68, 120, 135])
    res["diff_channels"] = channels
    res["diffs"] = np.stack([d.numpy()[:, channels] for d in diffs]).astype(np.float32)  # [2, 3, 6, 64, 64]

    # ---------------------------------------------------------------- generator
    G = net.Generator()
    names = list(G.state_dict())
    shapes = [tuple(G.state_dict()[k].shape) for k in names]
    sd = golden.random_state_dict(names, shapes, seed=1)
    G.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    G.eval()
    res["g_names"] = np.array(names)
    res["g_shapes"] = np.array([list(s) + [0] * (4 - len(s)) for s in shapes])
    res["g_ndims"] = np.array([len(s) for s in shapes])
    images = golden.random_images(2, 2, 256)
    x, y = [torch.from_numpy(images[i].transpose(2, 0, 1).copy())[None] for i in (0, 1)]
    gamma, beta = G(x, y, masks[0], masks[1], diffs[0], diffs[1], ret=True)
    two_pass = G(x, y, masks[0], masks[1], diffs[0], diffs[1], gamma=gamma, beta=beta)
    one_pass = G(x, y, masks[0], masks[1], diffs[0], diffs[1])
    res["gamma"], res["beta"] = gamma.numpy()[0, 0], beta.numpy()[0, 0]
    res["out_stride2"] = two_pass.numpy()[0, :, ::2, ::2].transpose(1, 2, 0)
    res["one_vs_two_pass"] = np.float32((one_pass - two_pass).abs().max())
    # identical source and reference (the identity term of training)
    gi, _ = G(x, x, masks[0], masks[0], diffs[0], diffs[0], ret=True)
    res["gamma_self"] = gi.numpy()[0, 0]

    # ---------------------------------------------------------------- discriminator
    torch.manual_seed(0)
    D = net.Discriminator(64, conv_dim=4, repeat_num=3, norm="SN")
    res["d_names"] = np.array(list(D.state_dict()))
    for k, v in D.state_dict().items():
        res["d/" + k] = v.numpy().copy()
    dx = torch.from_numpy(golden.random_images(3, 2, 64).transpose(0, 3, 1, 2).copy())
    res["d_in"] = dx.numpy()
    res["d_out1"] = D(dx).numpy()
    res["d_out2"] = D(dx.flip(-1)).numpy()
    res["d_u_after"] = D.main[0].weight_u.numpy().copy()

    # ---------------------------------------------------------------- histogram loss
    hl = HistogramLoss()
    # On the GPU the official code was run on, histogram_matching's `.cpu().numpy()` copies;
    # on CPU it aliases input_masked, the in-place table lookup overwrites it and the loss
    # reads 0. Emulate the GPU copy:
    cpu = torch.Tensor.cpu
    torch.Tensor.cpu = lambda self, *a, **k: cpu(self, *a, **k).clone()
    rng = np.random.default_rng(4)
    his = []
    for case in range(3):
        a = np.tanh(rng.standard_normal((1, 3, 32, 32)) * 0.8 + case * 0.3).astype(np.float32)
        b = np.tanh(rng.standard_normal((1, 3, 32, 32)) * 0.5 - 0.4).astype(np.float32)
        ma = (rng.uniform(size=(1, 1, 32, 32)) < 0.3 + 0.2 * case).astype(np.float32)
        mb = (rng.uniform(size=(1, 1, 32, 32)) < 0.4).astype(np.float32)
        # 3-D masks [1, H, W]: the op on the masked pixels; 4-D [1, 1, H, W] as solver.py passes
        # them (mask_s[:, 0] of [1, 3, 1, H, W]), which makes nonzero()[:, 2:4] read (0, y)
        intended = hl(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(ma[0]), torch.from_numpy(mb[0]))
        released = hl(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(ma), torch.from_numpy(mb))
        his.append((a, b, ma, mb, float(intended), float(released)))
    for k, name in enumerate(("his_a", "his_b", "his_ma", "his_mb")):
        res[name] = np.stack([h[k] for h in his])
    res["his_loss"] = np.array([h[4] for h in his], np.float32)
    res["his_loss_released"] = np.array([h[5] for h in his], np.float32)
    torch.Tensor.cpu = cpu
    np.savez_compressed(out, **res)
    print(f"wrote {out}: one-pass vs two-pass max |diff| {res['one_vs_two_pass']:.3g}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
