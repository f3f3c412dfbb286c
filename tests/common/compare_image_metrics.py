"""Once, outside the suite (needs pip install lpips pytorch-fid): our LPIPS and FID Inception
against the packages' own modules at image size 256x192, on the same seeded random weights.

  .venv/bin/python -m tests.common.compare_image_metrics

Prints the max abs difference of LPIPS (alex, vgg) at 256x192 and of the Inception pool3 /
logits through pytorch-fid's resize to 299 (from 256x192 and from 64x48), and the FID of
the two feature sets by pytorch-fid's and our formula.
"""
import numpy as np
import torch

from tests.common.image_metrics_golden import seeded_state_dict
from tests.common.make_image_metrics_golden import fid_inception, load, wrap_inception


def main():
    import jax
    import lpips
    from pytorch_fid.fid_score import calculate_frechet_distance

    from common import image_metrics as im
    from common.layers import inception
    rng = np.random.default_rng(0)
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    for net in ("alex", "vgg"):
        m = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
        keys = [k for k in m.state_dict() if not k.startswith("scaling_layer")]
        sd = seeded_state_dict(keys, [tuple(m.state_dict()[k].shape) for k in keys], 10)
        load(m, sd)
        a = rng.uniform(-1, 1, (4, 256, 192, 3)).astype(np.float32)
        b = np.clip(a + 0.3 * rng.standard_normal(a.shape), -1, 1).astype(np.float32)
        with torch.no_grad():
            want = m(nchw(a), nchw(b)).numpy().reshape(-1)
        got = np.asarray(im.LPIPS(net).apply(im.convert_lpips([sd], net), a, b))
        print(f"LPIPS {net} 256x192: ours {got} lpips {want} max abs diff {np.abs(got - want).max():.2e}")
    inc = fid_inception().eval()
    keys = list(inc.state_dict())
    sd = seeded_state_dict(keys, [tuple(inc.state_dict()[k].shape) for k in keys], 11)
    load(inc, sd)
    ref = wrap_inception(inc, True)
    variables = inception.convert_fid_weights(sd)
    ours = jax.jit(lambda v, x: inception.InceptionV3().apply(v, x))
    feats = {}
    for h, w in ((256, 192), (64, 48)):
        x = rng.uniform(0, 1, (4, h, w, 3)).astype(np.float32)
        with torch.no_grad():
            pool3 = ref(nchw(x))[0].flatten(1)
            logits = inc.fc(pool3).numpy()
        o = ours(variables, x)
        feats[h] = (pool3.numpy(), np.asarray(o["pool3"]))
        print(f"Inception {h}x{w} -> 299: pool3 max abs diff {np.abs(np.asarray(o['pool3']) - pool3.numpy()).max():.2e} "
              f"(max {np.abs(pool3.numpy()).max():.2f}), logits {np.abs(np.asarray(o['logits']) - logits).max():.2e}")
    (ra, oa), (rb, ob) = feats[256], feats[64]
    ref_fid = calculate_frechet_distance(ra.mean(0), np.cov(ra, rowvar=False), rb.mean(0), np.cov(rb, rowvar=False))
    print(f"FID of the two sets: pytorch-fid on its features {ref_fid:.6f}, ours on ours {im.fid(oa, ob):.6f}")


if __name__ == "__main__":
    main()
