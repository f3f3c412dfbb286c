"""torchvision AlexNet `features` (the trunk LPIPS reads), NHWC.

Layers in torchvision's order, each tap named: conv1 relu1 pool1 conv2 relu2 pool2 conv3
relu3 conv4 relu4 conv5 relu5 pool5 (index i is torchvision's `features[i]`). The forward
pass stops after the last requested tap; without `features` the call returns pool5.
Parameters are `conv{n}/{kernel,bias}`; `torchvision_rules` maps torchvision's
`features.{i}.weight/bias` to them (the classifier is ignored). The input is used as given.
"""
import flax.linen as nn
import jax.numpy as jnp

from common.layers.basic import torch_bias_init, torch_conv_init
from common.layers.features import Taps

# (width, kernel, stride, padding, max-pool after) of conv1..conv5 [torchvision alexnet.py]
CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False),
         (256, 3, 1, 1, True))


def layer_names() -> tuple[str, ...]:
    names = []
    for n, (*_, pool) in enumerate(CONVS, start=1):
        names += [f"conv{n}", f"relu{n}"] + ([f"pool{n}"] if pool else [])
    return tuple(names)


class AlexNetFeatures(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, features=None):
        taps = Taps(features, layer_names(), other_names=())
        x = x.astype(self.dtype)
        for n, (width, k, s, p, pool) in enumerate(CONVS, start=1):
            x = nn.Conv(width, (k, k), (s, s), padding=[(p, p), (p, p)], dtype=self.dtype, name=f"conv{n}",
                        kernel_init=torch_conv_init, bias_init=torch_bias_init(k * k * x.shape[-1]))(x)
            if taps.add(f"conv{n}", x):
                return taps.out
            x = nn.relu(x)
            if taps.add(f"relu{n}", x):
                return taps.out
            if pool:
                x = nn.max_pool(x, (3, 3), (2, 2))
                if taps.add(f"pool{n}", x):
                    return taps.out
        return x


def torchvision_rules(prefix: str = "params"):
    """common.convert rules: torchvision `features.{i}.weight/bias` -> `{prefix}/conv{n}/...`."""
    from common.convert import conv_kernel, identity
    rules = []
    for i, name in enumerate(layer_names()):
        if name.startswith("conv"):
            rules += [(rf"features\.{i}\.weight", f"{prefix}/{name}/kernel", conv_kernel),
                      (rf"features\.{i}\.bias", f"{prefix}/{name}/bias", identity)]
    return rules
