"""Parameter counts of the variant table against the spec's integers (eval_shape, no
compute), shapes, and the converter's command line on an official-layout .pth."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avton import convert
from avton import model as M
from common import checkpoint
from tests.avton import golden as G
from tests.conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))


def _count(variant, *shapes, **kw):
    m = M.create_model(variant, **kw)
    v = nn.meta.unbox(jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), *[jnp.zeros(s) for s in shapes])))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(v["params"])), v


@pytest.mark.parametrize("variant,shapes,expected", [
    ("gmm", [(1, 256, 192, 22), (1, 256, 192, 3)], 19_057_650),
    ("igmm", [(1, 256, 192, 22), (1, 256, 192, 3)], 19_057_650),
    ("tom", [(1, 256, 192, 25)], 21_349_252),
    ("tofm", [(1, 256, 192, 29)], 21_353_348),
    ("refine", [(1, 256, 192, 37)], 34_540_942),
    ("lpm", [(1, 256, 192, 29)], 34_530_564),
    ("disc", [(1, 256, 192, 27)], 5_578_626),
    ("disc", [(1, 256, 192, 51)], 5_627_778),
])
def test_parameter_counts_equal_the_reference_modules(variant, shapes, expected):
    assert _count(variant, *shapes)[0] == expected


def test_gmm_shapes_and_extractor_split():
    n, v = _count("gmm", (1, 256, 192, 22), (1, 256, 192, 3))
    size = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(t))  # noqa: E731
    p = v["params"]
    assert (size(p["extractionA"]), size(p["extractionB"]), size(p["regression"])) == (7_498_560, 7_479_104, 4_079_986)
    m = M.create_model("tiny_igmm")
    grid, theta = jax.eval_shape(lambda: m.apply(m.init(jax.random.PRNGKey(0), jnp.zeros((2, 64, 48, 22)),
                                                        jnp.zeros((2, 64, 48, 3))),
                                                 jnp.zeros((2, 64, 48, 22)), jnp.zeros((2, 64, 48, 3))))
    assert grid.shape == (2, 64, 48, 2) and theta.shape == (2, 50)


def test_convert_cli_reads_an_official_pth_and_widens_tom_to_tofm(tmp_path):
    torch = require("torch")
    fix = np.load(os.path.join(HERE, "golden_cpvton.npz"))
    shapes = [tuple(int(v) for v in s.split(",")) if s else () for s in fix["tom_shapes"]]
    sd = G.random_state_dict(fix["tom_names"], shapes)
    pth = str(tmp_path / "tom_final.pth")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, pth)
    # 25-input TOM as written by cp-vton, into our 29-input TOFM (limb channels start at 0)
    convert.main(["tom", pth, str(tmp_path / "out"), "--variant", "tofm", "--in_ch", "29"])
    nets = checkpoint.load_nets(str(tmp_path / "out"))
    k = np.asarray(nets["tofm"]["params"]["model"]["down"]["kernel"])
    assert k.shape[2] == 29 and np.all(k[:, :, 25:] == 0)
    np.testing.assert_array_equal(k[:, :, :25], sd["model.model.0.weight"].transpose(2, 3, 1, 0))
    with pytest.raises(KeyError, match="model.model.0.weight"):
        convert.convert("unet", {k: v for k, v in sd.items() if k != "model.model.0.weight"},
                        convert.template("tom", 25, 64, 64, ngf=G.TOM_NGF))


@pytest.mark.parametrize("dataset", ["viton", "vitonhd", "alltype"])
@pytest.mark.parametrize("stage", ["gmm", "lpm", "tofm"])
def test_every_stage_config_builds_its_task(dataset, stage):
    from common import tasks
    from tests.common.configs import load_config
    for arg in (None, "test"):
        c = load_config(f"configs/avton/{dataset}_{stage}.py", arg)
        task = tasks.get_task(c.task)(c)
        assert task.stage == stage and c.data.builder == "avton.data"
    full = load_config(f"configs/avton/{dataset}_{stage}.py")
    assert (full.optim.lr, full.optim.b1, full.batch_size, full.num_train_steps) == (1e-4, 0.5, 4, 200_000)
    with pytest.raises(AttributeError):
        full.optim.lr_peak = 1.0                      # locked: a misspelt key is an error


def test_acgpn_g1_and_d_checkpoints_convert_through_the_cli(tmp_path):
    """ACGPN's latest_net_G1.pth (Refine 37->14; widths read from the file) and a pix2pixHD
    D (latest_net_D1.pth, 51 inputs) as save_network writes them: official key names (the
    golden fixture's, made from the ACGPN modules), torch layouts, a 'module.' prefix."""
    torch = require("torch")
    fix = np.load(os.path.join(HERE, "golden_acgpn.npz"))
    rng = np.random.default_rng(0)
    for network, kind, variant, cin, kwargs, golden in (
            ("refine", "refine", "refine", 37, dict(out_ch=14, widths=(8, 16, 32, 64, 128)), "refine_names"),
            ("disc", "disc", "disc", 51, dict(ndf=8), "disc_names")):
        template = convert.template(variant, cin, 32, 32, **kwargs)
        sd, ours = {}, {}
        for kpath, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
            path = tuple(str(getattr(k, "key", k)) for k in kpath)
            value = rng.standard_normal(leaf.shape).astype(np.float32)
            ours[path] = value
            torch_value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value
            sd[convert.torch_key(kind, path[1:])] = torch.from_numpy(np.ascontiguousarray(torch_value))
        assert set(sd) == {str(n) for n in fix[golden] if not str(n).endswith("num_batches_tracked")}
        pth = str(tmp_path / f"{network}.pth")
        torch.save({f"module.{k}": v for k, v in sd.items()}, pth)
        convert.main([network, pth, str(tmp_path / network)])
        nets = checkpoint.load_nets(str(tmp_path / network))
        (got,) = nets.values()
        flat = {tuple(str(getattr(k, "key", k)) for k in kp): np.asarray(v)
                for kp, v in jax.tree_util.tree_flatten_with_path(got)[0]}
        assert flat.keys() == ours.keys()
        for path, value in ours.items():
            np.testing.assert_array_equal(flat[path], value)
