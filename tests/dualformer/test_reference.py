"""Equivalence with the official DualFormer (sail-sg/dualformer) through a golden fixture:
tests/dualformer/make_golden.py ran the official backbone + I3D head at a tiny width with
random weights; here its state_dict goes through dualformer.convert and our model must
compute the same features and logits (eval), the same train-mode features (BatchNorm on
batch statistics) and the same updated running statistics."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.convert import check_against
from dualformer.convert import convert_state_dict
from dualformer.model import DualFormer
from tests.dualformer.make_golden import NUM_CLASSES, SCALE, TINY

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_tiny.npz")


def _golden():
    z = np.load(GOLDEN)
    sd = {k[3:]: z[k] for k in z.files if k.startswith("sd/")}
    return z, sd


def _tiny_model():
    return DualFormer(embed_dims=TINY["embed_dims"], num_heads=TINY["num_heads"], depths=TINY["depths"],
                      num_classes=NUM_CLASSES, local_sizes=TINY["local_sizes"], fine_pysizes=TINY["fine_pysizes"],
                      coarse_pysizes=TINY["coarse_pysizes"])


def test_converted_official_weights_give_the_official_outputs():
    z, sd = _golden()
    model = _tiny_model()
    x = (jnp.asarray(z["clip"], jnp.float32) - 128.0) / SCALE
    variables = convert_state_dict(sd)
    check_against(variables, nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))))

    feats = model.apply(variables, x, features=("norm",))["norm"]
    np.testing.assert_allclose(feats, z["features"], atol=2e-4, rtol=0)
    logits = model.apply(variables, x)
    np.testing.assert_allclose(logits, z["logits"], atol=2e-4, rtol=0)

    feats_train, updates = model.apply(variables, x, train=True, features=("norm",), mutable=["batch_stats"])
    feats_train = feats_train["norm"]
    np.testing.assert_allclose(feats_train, z["features_train"], atol=2e-4, rtol=0)
    # PyTorch's running_var uses the unbiased batch variance, Flax's the biased one: compare means.
    for k in z.files:
        if k.startswith("after_train/") and k.endswith("running_mean"):
            s, j = k.split("/")[1].split(".")[2:4]
            got = updates["batch_stats"]["backbone"][f"blocks_{s}_{j}"]["attn"]["lr_1"]["mean"]
            np.testing.assert_allclose(got, z[k], atol=1e-5)
