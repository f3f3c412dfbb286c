"""Full-size comparison with the official CMT, once, outside the suite (its figures go in
cmt/README.md): the official 512-d / 12-layer model on fast-transformers' causal-linear
kernel with seeded weights (tests/cmt/golden.py's rule at full size, the official `pe`
buffer), converted by cmt.convert, run by our model on the same random songs.

  OFFICIAL=/tmp/cmt_off/src FT=/tmp/cmt_ft/site python tests/cmt/compare_official.py [LENGTH]
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("OFFICIAL", "/tmp/cmt_off/src"))
sys.path.insert(0, os.environ.get("FT", "/tmp/cmt_ft/site"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import torch  # noqa: E402

import model as official  # noqa: E402
from tests.cmt import golden  # noqa: E402


def main(length: int = 1000):
    import jax
    import jax.numpy as jnp
    from cmt import convert, encoding
    from cmt.model import count_params, create_model
    net = official.CMT(list(encoding.VOCAB), list(encoding.INIT_VOCAB)).eval()
    sd = net.state_dict()
    w = golden.weights({k: tuple(v.shape) for k, v in sd.items() if k != "encoder_pos_emb.pe"})
    net.load_state_dict({**{k: torch.from_numpy(v) for k, v in w.items()}, "encoder_pos_emb.pe": sd["encoder_pos_emb.pe"]})
    n_official = sum(p.numel() for p in net.parameters() if p.requires_grad)
    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(0, v, (1, length + 1)) for v in encoding.VOCAB[:8]], -1)
    ticks = np.sort(rng.integers(0, encoding.VOCAB[8], (1, length + 1)), 1)[..., None]
    x = np.concatenate([x, ticks], -1).astype(np.int64)
    prefix = encoding.DEFAULT_PREFIX[None].astype(np.int64)
    t0 = time.time()
    with torch.no_grad():
        h, y_type = net.forward_hidden(torch.from_numpy(x[:, :-1]), is_training=True, init_token=torch.from_numpy(prefix))
        heads = net.forward_output(h, torch.from_numpy(x[:, 1:]))
    t_official = time.time() - t0
    names = ("barbeat", "pitch", "duration", "instr", "onset_density", "beat_density")
    want = {"hidden": h[:, 7:].numpy(), "type": y_type.numpy(), **{k: v.numpy() for k, v in zip(names, heads)}}
    variables = convert.convert_state_dict({"module." + k: v.numpy() for k, v in
                                            {**{k: torch.from_numpy(v) for k, v in w.items()},
                                             "encoder_pos_emb.pe": sd["encoder_pos_emb.pe"]}.items()})
    model = create_model("cmt")
    fwd = jax.jit(lambda v, p, a, t: model.apply(v, p, a, t))
    out = fwd(variables, jnp.asarray(prefix), jnp.asarray(x[:, :-1]), jnp.asarray(x[:, 1:, 1]))
    jax.block_until_ready(out)
    print(f"params: official {n_official:,}, ours {count_params(model):,}; S = {length} (+7 prefix rows)")
    for k in want:
        d = np.abs(np.asarray(out[k]) - want[k])
        print(f"  {k:14s} max |diff| {d.max():.2e}   max |official| {np.abs(want[k]).max():.2f}")
    print(f"official forward {t_official:.1f} s on CPU (rough; shared cores)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
