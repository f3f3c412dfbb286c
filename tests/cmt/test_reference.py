"""Equality with the official code given the same weights (tests/cmt/make_golden.py ran
wzk1015/video-bgm-generation's CMT on fast-transformers' causal-linear kernel at tiny width):
hidden states, the type logits and the six stage-2 logits for a random batch and the
bwv66.6 chorale, train_forward's seven losses, fast-transformers' CausalLinearAttention,
the recurrent form against the official parallel pass, and the converter + CLI on the
official state dict."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmt import convert, encoding
from cmt.model import create_model
from cmt.task import FIELDS, masked_ce
from common.layers.linear_attention import causal_linear_attention
from tests.cmt import golden
from tests.conftest import require

OFFICIAL_LOSS_ORDER = ("barbeat", "type", "pitch", "duration", "instr", "onset_density", "beat_density")


@pytest.fixture(scope="module")
def fixture():
    return golden.load()


@pytest.fixture(scope="module")
def variables(fixture):
    return convert.convert_state_dict(golden.state_dict(fixture))


def _forward(variables, prefix, x, y):
    model = create_model("tiny")
    return jax.jit(lambda v, p, a, t: model.apply(v, p, a, t))(variables, jnp.asarray(prefix), jnp.asarray(x),
                                                               jnp.asarray(y[..., 1]))


@pytest.mark.parametrize("case", ["random", "chorale"])
def test_logits_and_losses_equal_the_official_model(fixture, variables, case):
    if case == "random":
        x_all = fixture["random/x"]
        prefix, x, y, mask = fixture["random/prefix"], x_all[:, :-1], x_all[:, 1:], fixture["random/mask"]
    else:
        rows = encoding.to_model_order(fixture["chorale/raw"], training=False)
        x, y = rows[None, :-1].copy(), rows[None, 1:]
        x[0, :len(rows) - 1, 7] += 1
        prefix, mask = encoding.DEFAULT_PREFIX[None], np.ones(x.shape[:2], np.float32)
    out = _forward(variables, prefix, x, y)
    np.testing.assert_allclose(out["hidden"], fixture[f"{case}/hidden"], atol=1e-5, rtol=1e-5)
    for name in FIELDS:
        np.testing.assert_allclose(out[name], fixture[f"{case}/{name}"], atol=1e-5, rtol=1e-5, err_msg=name)
    losses = {k: float(masked_ce(out[k], jnp.asarray(y[..., i]), jnp.asarray(mask))) for i, k in enumerate(FIELDS)}
    np.testing.assert_allclose([losses[k] for k in OFFICIAL_LOSS_ORDER], fixture[f"{case}/losses"], rtol=1e-5)


def test_linear_attention_equals_fast_transformers(fixture):
    got = causal_linear_attention(fixture["attn/q"], fixture["attn/k"], fixture["attn/v"], chunk=32)
    np.testing.assert_allclose(got, fixture["attn/out"], atol=1e-5, rtol=1e-5)


def test_recurrent_steps_give_the_official_parallel_logits(fixture, variables):
    """The official sampler re-runs the whole prefix for every token; the recurrent form
    must give the same per-position outputs (first 120 chorale rows)."""
    model = create_model("tiny")
    rows = encoding.to_model_order(fixture["chorale/raw"], training=False)[:120]
    rows[:, 7] += 1
    step_p = jax.jit(lambda c, r: model.apply(variables, r, c, method=model.step_prefix))
    step_m = jax.jit(lambda c, r: model.apply(variables, r, c, method=model.step_music))
    head = jax.jit(lambda h: model.apply(variables, h, method=model.type_logits))
    cache = model.apply(variables, 1, method=model.init_cache)
    for i in range(7):
        _, cache = step_p(cache, jnp.asarray(encoding.DEFAULT_PREFIX[None, i]))
    hs = []
    for t in range(len(rows)):
        h, cache = step_m(cache, jnp.asarray(rows[None, t]))
        hs.append(h[0])
    hs = np.stack(hs)
    np.testing.assert_allclose(hs, fixture["chorale/hidden"][0, :len(rows)], atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(head(jnp.asarray(hs)), fixture["chorale/type"][0, :len(rows)], atol=2e-5)


def test_converter_cli_on_the_official_state_dict(fixture, variables, tmp_path):
    torch = require("torch")
    from common.checkpoint import load_variables
    sd = golden.state_dict(fixture)
    assert len(sd) == 228 - 10 * 16 and all(k.startswith("module.") for k in sd)   # 2 of 12 layers; DataParallel
    path = str(tmp_path / "loss_8_params.pt")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    out = convert.main([path, str(tmp_path / "converted")])
    loaded = load_variables(out)
    chex_leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: np.array_equal(a, b), loaded,
                                                                   jax.tree_util.tree_map(np.asarray, variables)))
    assert all(chex_leaves) and loaded["buffers"]["pe"].shape == (20000, 64)
    with pytest.raises(ValueError, match="does not fit"):
        convert.convert_state_dict({k: v for k, v in sd.items() if "proj_pitch" not in k})
