"""Seeded random weights for the image-metric goldens: the same numbers from a list of
(state_dict key, shape), in make_image_metrics_golden.py (fed to lpips / pytorch-fid) and
in test_image_metrics.py (fed to our converters)."""
import numpy as np


def seeded_state_dict(keys, shapes, seed: int) -> dict[str, np.ndarray]:
    """He-normal convs and linears (lpips heads: |normal| / C), BatchNorm weight and
    running_var in [0.5, 1.5], biases and running means N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in zip(keys, shapes):
        shape = tuple(int(s) for s in shape)
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith(("running_var",)) or (".bn." in key and key.endswith("weight")):
            v = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(("bias", "running_mean")):
            v = 0.1 * rng.standard_normal(shape)
        elif key.startswith("lin"):
            v = np.abs(rng.standard_normal(shape)) / shape[1]
        else:
            v = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        out[key] = v.astype(np.float32)
    return out
