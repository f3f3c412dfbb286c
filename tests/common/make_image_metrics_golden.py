"""Writes tests/common/golden_image_metrics.npz by running the reference packages once
(pip install lpips pytorch-fid; not test dependencies) with seeded random weights:

- lpips.LPIPS(net='alex' | 'vgg', version 0.1, pretrained trunk and heads replaced by the
  seeded weights) on two pairs of [-1, 1] images (alex 64x64, vgg 32x32);
- pytorch-fid's fid_inception_v3 layout (FIDInceptionA/C/E blocks, 1008 classes) inside
  pytorch_fid.inception.InceptionV3(resize_input=False) on two 80x80 [0, 1] images: pool3,
  and the fc logits;
- pytorch_fid.fid_score.calculate_frechet_distance on two small random feature sets.

  .venv/bin/python -m tests.common.make_image_metrics_golden
"""
import os

import numpy as np
import torch

from tests.common.image_metrics_golden import seeded_state_dict

OUT = os.path.join(os.path.dirname(__file__), "golden_image_metrics.npz")


def fid_inception():
    import pytorch_fid.inception as pi
    inc = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for n, c in (("Mixed_5b", (192, 32)), ("Mixed_5c", (256, 64)), ("Mixed_5d", (288, 64))):
        setattr(inc, n, pi.FIDInceptionA(*c))
    for n, c in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        setattr(inc, n, pi.FIDInceptionC(768, c))
    inc.Mixed_7b, inc.Mixed_7c = pi.FIDInceptionE_1(1280), pi.FIDInceptionE_2(2048)
    return inc


def wrap_inception(inc, resize):
    """pytorch-fid's InceptionV3 wrapper around `inc` (its constructor would download)."""
    import pytorch_fid.inception as pi
    orig = pi.fid_inception_v3
    pi.fid_inception_v3 = lambda: inc
    try:
        return pi.InceptionV3([3], resize_input=resize, normalize_input=True).eval()
    finally:
        pi.fid_inception_v3 = orig


def load(model, sd):
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    assert not unexpected and all(k.endswith(("num_batches_tracked", "shift", "scale")) for k in missing), \
        (missing, unexpected)


def main():
    import lpips
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(0)
    out = {}
    for net, size, seed in (("alex", 64, 1), ("vgg", 32, 2)):
        m = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
        keys = [k for k in m.state_dict() if not k.startswith("scaling_layer")]
        shapes = [tuple(m.state_dict()[k].shape) for k in keys]
        load(m, seeded_state_dict(keys, shapes, seed))
        a = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
        b = np.clip(a + 0.3 * rng.standard_normal(a.shape), -1, 1).astype(np.float32)
        with torch.no_grad():
            d = m(torch.from_numpy(a.transpose(0, 3, 1, 2)), torch.from_numpy(b.transpose(0, 3, 1, 2)))
        out.update({f"lpips_{net}_keys": np.array(keys), f"lpips_{net}_shapes": np.array(shapes, dtype=object),
                    f"lpips_{net}_seed": seed, f"lpips_{net}_a": a, f"lpips_{net}_b": b,
                    f"lpips_{net}_out": d.numpy().reshape(-1)})
    inc = fid_inception().eval()
    keys = list(inc.state_dict())
    shapes = [tuple(inc.state_dict()[k].shape) for k in keys]
    load(inc, seeded_state_dict(keys, shapes, 3))
    x = rng.uniform(0, 1, (2, 80, 80, 3)).astype(np.float32)
    with torch.no_grad():
        pool3 = wrap_inception(inc, False)(torch.from_numpy(x.transpose(0, 3, 1, 2)))[0].flatten(1)
        logits = inc.fc(pool3)
    out.update(inception_keys=np.array(keys), inception_shapes=np.array(shapes, dtype=object), inception_seed=3,
               inception_x=x, inception_pool3=pool3.numpy(), inception_logits=logits.numpy())
    fa, fb = rng.standard_normal((40, 8)), rng.standard_normal((30, 8)) * 1.5 + 0.2
    out.update(fid_a=fa, fid_b=fb, fid_out=calculate_frechet_distance(
        fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False)))
    shapes = {k: v for k, v in out.items() if k.endswith("_shapes")}
    for k, v in shapes.items():            # ragged shape lists as 'a,b,c' strings (no pickles in the npz)
        out[k] = np.array([",".join(map(str, s)) for s in v])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: " + ", ".join(f"{k} {np.shape(v)}" for k, v in out.items() if k.endswith("_out")))


if __name__ == "__main__":
    main()
