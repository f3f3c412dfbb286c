"""Run the official DualFormer backbone beside ours at full size with the same random weights.

    python -m tests.dualformer.compare_official --official /path/to/sail-sg/dualformer \
        --variant dualformer_tiny --frames 32

Prints the max abs difference of the backbone features (eval mode, randomised BatchNorm
statistics). Not a test (too slow for the suite); the tiny-width fixture covers CI.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dualformer.convert import convert_state_dict
from dualformer.model import VARIANTS, create_model
from dualformer.reference import Recognizer, load_official
from tests.dualformer.make_golden import randomise


def main():
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--variant", default="dualformer_tiny", choices=sorted(VARIANTS))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    v = VARIANTS[args.variant]
    model_t = Recognizer(load_official(args.official), 400, video_size=(args.frames, 224, 224), qkv_bias=True,
                         embed_dims=list(v["embed_dims"]), num_heads=list(v["num_heads"]), depths=list(v["depths"]),
                         local_sizes=list(v["local_sizes"]), fine_pysizes=list(v["fine_pysizes"]),
                         coarse_pysizes=list(v["coarse_pysizes"])).eval()
    randomise(model_t, 1)
    x = np.random.default_rng(0).standard_normal((args.batch, args.frames, 224, 224, 3)).astype(np.float32)
    t0 = time.time()
    with torch.no_grad():
        ref, _ = model_t(torch.from_numpy(x).permute(0, 4, 1, 2, 3))
    ref = ref.permute(0, 2, 3, 4, 1).numpy()
    t_ref = time.time() - t0
    sd = {k: t.numpy() for k, t in model_t.state_dict().items()}
    del model_t
    model = create_model(args.variant, num_classes=400)
    t0 = time.time()
    ours = np.asarray(jax.jit(lambda v, x: model.apply(v, x, features=("norm",))["norm"])(
        convert_state_dict(sd), jnp.asarray(x)))
    t_ours = time.time() - t0
    print(f"{args.variant} {args.frames}x224x224: features {ours.shape}, max|ref|={np.abs(ref).max():.3f}, "
          f"max abs diff {np.abs(ours - ref).max():.3e} (torch {t_ref:.1f}s, jax incl. compile {t_ours:.1f}s)")


if __name__ == "__main__":
    main()
