"""Full-size comparison with the official PSGAN code, run once outside the suite:

  python tests/psgan/compare_official.py /tmp/psgan_off      # the official repo, extracted

Official Generator with solver.py's xavier_normal init (torch.manual_seed(0)) and the full
Discriminator (conv_dim 64) at 256², on synthetic faces (psgan/synthetic.py) through the
official PreProcess.process; its state_dicts go through psgan.convert; the histogram loss on
the faces' real region masks. Prints max |ours - official| per output.
"""
import os
import sys

import numpy as np


def main(official):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", ".."))
    import jax
    import jax.numpy as jnp
    import torch
    from psgan import convert, losses, preprocess, synthetic
    from psgan.model import Discriminator, create_model
    from tests.psgan import make_golden
    make_golden_mods = make_golden  # noqa: F841
    # import the official modules the way make_golden does (stubbed package, no dlib)
    import types
    import torchvision.models.vgg as tvgg
    tvgg.model_urls = getattr(tvgg, "model_urls", {})
    tvgg.load_state_dict_from_url = getattr(tvgg, "load_state_dict_from_url", None)
    ours = {k: v for k, v in sys.modules.items() if k == "psgan" or k.startswith("psgan.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, official)
    pkg = types.ModuleType("psgan")
    pkg.__path__ = [os.path.join(official, "psgan")]
    sys.modules["psgan"] = pkg
    sys.modules["faceutils"] = types.ModuleType("faceutils")
    torch.Tensor.cuda = lambda self, *a, **k: self
    cpu = torch.Tensor.cpu
    torch.Tensor.cpu = lambda self, *a, **k: cpu(self, *a, **k).clone()
    from psgan import net
    from psgan.preprocess import PreProcess
    from ops.histogram_loss import HistogramLoss
    sys.modules.update(ours)
    torch.set_grad_enabled(False)

    cfg = types.SimpleNamespace(DATA=types.SimpleNamespace(IMG_SIZE=256), PREPROCESS=types.SimpleNamespace(
        LANDMARK_POINTS=68, UP_RATIO=0, DOWN_RATIO=0, WIDTH_RATIO=0, LIP_CLASS=[7, 9], FACE_CLASS=[1, 6]))
    pre = PreProcess(cfg, need_parser=False)
    rng = np.random.default_rng(11)
    faces = [synthetic.face(rng, 256, makeup=k == 1) for k in range(2)]
    t_in, j_in = [], []
    for im, seg, lms in faces:
        m, d = pre.process(torch.from_numpy(seg.astype(np.float32))[None, None], lms)
        x = torch.from_numpy((im.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1).copy())[None]
        t_in.append((x, m, d))
        mm, dd = preprocess.process(seg, lms)
        j_in.append((im.astype(np.float32)[None] / 127.5 - 1, mm[None], dd[None]))
    print("preprocess: masks equal:", all(np.array_equal(t[1].numpy()[:, 0], j[1][0]) for t, j in zip(t_in, j_in)),
          " diff max |d|:", max(float(np.abs(t[2].numpy().transpose(0, 2, 3, 1) - j[2][0]).max())
                                for t, j in zip(t_in, j_in)))

    torch.manual_seed(0)
    G = net.Generator()
    for mod in G.modules():
        if "Conv" in type(mod).__name__:
            torch.nn.init.xavier_normal_(mod.weight, gain=1.0)
    G.eval()
    (xs, ms, ds), (xr, mr, dr) = t_in
    gamma, beta = G(xs, xr, ms, mr, ds, dr, ret=True)
    out = G(xs, xr, ms, mr, ds, dr, gamma=gamma, beta=beta)
    v = convert.convert_generator({k: t.numpy() for k, t in G.state_dict().items()}, "psgan")
    model = create_model("psgan")
    a = (j_in[0][0], j_in[1][0], j_in[0][1], j_in[1][1], j_in[0][2], j_in[1][2])
    with jax.default_matmul_precision("highest"):
        g2, b2 = jax.jit(lambda v: model.apply(v, *a, method=model.morph))(v)
        o2 = jax.jit(lambda v: model.apply(v, *a))(v)
    print(f"generator 256² (xavier init): gamma max|d| {np.abs(np.asarray(g2)[0, ..., 0] - gamma.numpy()[0, 0]).max():.3g}"
          f" (|gamma| max {np.abs(gamma.numpy()).max():.3g}), beta {np.abs(np.asarray(b2)[0, ..., 0] - beta.numpy()[0, 0]).max():.3g},"
          f" output {np.abs(np.asarray(o2)[0] - out.numpy()[0].transpose(1, 2, 0)).max():.3g}")

    torch.manual_seed(0)
    D = net.Discriminator(256, 64, 3, "SN")
    dv = convert.convert_discriminator({k: t.numpy().copy() for k, t in D.state_dict().items()})
    want = D(xs).numpy().transpose(0, 2, 3, 1)
    with jax.default_matmul_precision("highest"):
        got, _ = Discriminator().apply(dv, a[0], mutable=["spectral_stats"])
    print(f"discriminator 256² (conv_dim 64): max|d| {np.abs(np.asarray(got) - want).max():.3g} "
          f"(|out| max {np.abs(want).max():.3g}), shape {tuple(got.shape)}")

    hl = HistogramLoss()
    worst = 0.0
    for r in range(3):
        w = float(hl(out, xr, ms[r:r + 1, 0], mr[r:r + 1, 0]))
        o = float(losses.histogram_loss(jnp.asarray(out.numpy().transpose(0, 2, 3, 1)), jnp.asarray(a[1]),
                                        jnp.asarray(a[2][:, r]), jnp.asarray(a[3][:, r]))[0])
        worst = max(worst, abs(o - w) / max(abs(w), 1e-12))
        print(f"histogram loss region {r}: official {w:.6f} ours {o:.6f}")
    print(f"histogram loss max relative difference {worst:.3g}")


if __name__ == "__main__":
    main(sys.argv[1])
