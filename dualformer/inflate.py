"""Start a video model from a 2D ImageNet checkpoint, as the official `pretrained2d=True` does.

    python -m dualformer.inflate 2D.pth OUT_DIR --variant dualformer_tiny [--frames 32] [--twins]

Reads a 2D DualFormer state_dict (official names; `--twins` for a timm Twins-SVT one: its full
`sr` convs and head are dropped), initialises the 3D model, overwrites every tensor the
inflated checkpoint provides (dualformer.convert.inflate_2d) and writes the variables for
`--config.init_from=OUT_DIR`.
"""
import argparse

import jax
import jax.numpy as jnp

from common.convert import add_io_arguments, load_state_dict, run_cli
from dualformer.convert import load_inflated, twins_svt_to_2d_dualformer
from dualformer.model import VARIANTS, create_model


def main(argv=None):
    ap = add_io_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
                          "2D checkpoint (.pth / .safetensors)")
    ap.add_argument("--variant", default="dualformer_tiny", choices=sorted(VARIANTS))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--num_classes", type=int, default=400)
    ap.add_argument("--twins", action="store_true", help="the checkpoint is a timm Twins-SVT")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    return run_cli(lambda: _inflate(a), a.src)


def _inflate(a) -> str:
    from common import checkpoint
    model = create_model(a.variant, num_classes=a.num_classes)
    variables = model.init(jax.random.PRNGKey(a.seed), jnp.zeros((1, a.frames, 224, 224, 3)))
    sd = load_state_dict(a.src)
    if a.twins:
        sd = twins_svt_to_2d_dualformer(sd)
    patch_t = VARIANTS[a.variant]["patch_size"][0]
    out = load_inflated(variables, sd, temporal_pooling=(patch_t, 1, 1, 1), stage_frames=(a.frames // patch_t,) * 4,
                        fine_pysizes=VARIANTS[a.variant]["fine_pysizes"])
    path = checkpoint.save_variables(a.out_dir, out, overwrite=a.overwrite)
    print(f"inflated {len(sd)} 2D tensors into {a.variant}; wrote {path}")
    return path


if __name__ == "__main__":
    main()
