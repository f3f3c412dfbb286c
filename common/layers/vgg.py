"""torchvision VGG-16 / VGG-19 `features` (no batch norm) as a feature extractor, NHWC.

Layer names follow the usual perceptual-loss names, in torchvision's order, so a tap is
named either way: `features=(17, "relu4_1")` taps the output of `features[17]` (conv4_1)
and of `features[18]` (its ReLU). `stage_names` lists every layer: index i is
torchvision's `features[i]`. The forward pass stops after the last requested tap, and
`init` with `features` creates only the convs it needs; without `features` the call
returns pool5. Parameters are `conv{b}_{n}/{kernel,bias}`; torchvision's `features.{i}.*`
map to them through `torchvision_rules` (`python -m common.convert torchvision vgg16.pth
OUT --arch vgg16`; the classifier is ignored). The input is used as given: apply
`imagenet_normalize` first if the weights expect ImageNet statistics.
"""
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.basic import torch_bias_init, torch_conv_init
from common.layers.features import Taps

CFGS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str) -> tuple[str, ...]:
    """torchvision's features[i] -> name, e.g. vgg16: conv1_1 relu1_1 conv1_2 relu1_2 pool1 ..."""
    names = []
    for b, n in enumerate(CFGS[arch], start=1):
        for k in range(1, n + 1):
            names += [f"conv{b}_{k}", f"relu{b}_{k}"]
        names.append(f"pool{b}")
    return tuple(names)


def imagenet_normalize(x, value_range: tuple[float, float] = (-1.0, 1.0)):
    """Images in `value_range` -> (x01 - mean) / std, the input torchvision's weights expect."""
    lo, hi = value_range
    x01 = (x - lo) / (hi - lo)
    return (x01 - jnp.asarray(IMAGENET_MEAN, x.dtype)) / jnp.asarray(IMAGENET_STD, x.dtype)


class VGG(nn.Module):
    arch: str = "vgg16"
    dtype: jnp.dtype = jnp.float32

    @property
    def stage_names(self) -> tuple[str, ...]:
        return layer_names(self.arch)

    @nn.compact
    def __call__(self, x, features: Sequence | None = None):
        if self.arch not in CFGS:
            raise ValueError(f"unknown VGG {self.arch!r}: {' | '.join(CFGS)}")
        taps = Taps(features, self.stage_names, other_names=())
        x = x.astype(self.dtype)
        for b, n in enumerate(CFGS[self.arch], start=1):
            width = WIDTHS[b - 1]
            for k in range(1, n + 1):
                x = nn.Conv(width, (3, 3), padding=[(1, 1), (1, 1)], dtype=self.dtype, name=f"conv{b}_{k}",
                            kernel_init=torch_conv_init, bias_init=torch_bias_init(9 * x.shape[-1]))(x)
                if taps.add(f"conv{b}_{k}", x):
                    return taps.out
                x = nn.relu(x)
                if taps.add(f"relu{b}_{k}", x):
                    return taps.out
            x = nn.max_pool(x, (2, 2), (2, 2))
            if taps.add(f"pool{b}", x):
                return taps.out
        return x


def vgg16(dtype=jnp.float32) -> VGG:
    return VGG("vgg16", dtype)


def vgg19(dtype=jnp.float32) -> VGG:
    return VGG("vgg19", dtype)


ARCHS = {"vgg16": vgg16, "vgg19": vgg19}


def torchvision_rules(arch: str = "vgg16"):
    """common.convert rules: torchvision `features.{i}.weight/bias` -> `params/conv{b}_{n}/...`."""
    from common.convert import conv_kernel, identity
    rules = []
    for i, name in enumerate(layer_names(arch)):
        if name.startswith("conv"):
            rules += [(rf"features\.{i}\.weight", f"params/{name}/kernel", conv_kernel),
                      (rf"features\.{i}\.bias", f"params/{name}/bias", identity)]
    return rules


TORCHVISION_IGNORE = (r"classifier\..*",)


def convert_torchvision(state_dict: Mapping[str, np.ndarray], arch: str = "vgg16") -> dict:
    """A torchvision VGG state_dict (whole model or `features` only) -> the variables of
    `ARCHS[arch]()`, checked leaf by leaf against the model."""
    from common.convert import check_against, convert_with_rules
    if arch not in ARCHS:
        raise KeyError(f"unknown torchvision VGG {arch!r}; known: {sorted(ARCHS)}")
    variables = convert_with_rules(state_dict, torchvision_rules(arch), TORCHVISION_IGNORE)
    expected = jax.eval_shape(lambda: ARCHS[arch]().init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    check_against(variables, nn.meta.unbox(expected))
    return variables
