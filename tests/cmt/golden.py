"""Shared by make_golden.py (which runs the official code) and the tests (which load the
fixture): the tiny configuration, the seeded stand-in weights regenerated in NumPy from the
official state dict's names and shapes (so the fixture need not store them), and the inputs."""
import os

import numpy as np

HERE = os.path.dirname(__file__)
FIXTURE = os.path.join(HERE, "golden_tiny.npz")
TINY = dict(d_model=64, num_layers=2, num_heads=4, ffn_dim=128)
SEED = 1234
PE_ROWS = 256          # rows of the official `pe` buffer kept in the fixture (ticks used < 256)


def weights(shapes: dict) -> dict:
    """{name: float32 array}: embeddings N(0, 1), Linear U(+-1/sqrt(fan_in)) (PyTorch's
    defaults), LayerNorm scale 1 + 0.1 N and bias 0.1 N (not the trivial 1 / 0)."""
    rng = np.random.default_rng(SEED)
    out = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        if name.endswith("lut.weight"):
            w = rng.standard_normal(shape)
        elif ".norm" in name or name.startswith("transformer_encoder.norm"):
            w = (1.0 if name.endswith("weight") else 0.0) + 0.1 * rng.standard_normal(shape)
        else:
            fan_in = shape[1] if name.endswith("weight") else shapes[name[:-len("bias")] + "weight"][1]
            w = rng.uniform(-1, 1, shape) / np.sqrt(fan_in)
        out[name] = w.astype(np.float32)
    return out


def random_tokens(rng: np.random.Generator, batch: int, length: int, vocab) -> np.ndarray:
    """[B, S, 9] model-order rows: random attributes, nondecreasing ticks < PE_ROWS."""
    x = np.stack([rng.integers(0, v, (batch, length)) for v in vocab[:8]], -1)
    ticks = np.sort(rng.integers(0, PE_ROWS, (batch, length)), axis=1)
    return np.concatenate([x, ticks[..., None]], -1).astype(np.int64)


def load() -> dict:
    with np.load(FIXTURE, allow_pickle=False) as f:
        return dict(f)


def state_dict(fixture: dict) -> dict:
    """The official tiny state dict: regenerated weights + the official `pe` (its first
    PE_ROWS rows; the rest from our table, never indexed by the fixture's inputs)."""
    from cmt.model import MAX_LEN, sinusoid_table
    names = [str(n) for n in fixture["names"]]
    shapes = {n: tuple(int(s) for s in fixture["shapes"][i] if s > 0) for i, n in enumerate(names)}
    sd = weights({n: s for n, s in shapes.items() if n != "encoder_pos_emb.pe"})
    pe = sinusoid_table(MAX_LEN, TINY["d_model"])
    pe[:PE_ROWS] = fixture["pe"]
    sd["encoder_pos_emb.pe"] = pe[None]
    return {"module." + k: v for k, v in sd.items()}      # as DataParallel saves it
