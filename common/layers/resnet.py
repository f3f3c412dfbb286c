"""ResNet / ResNeXt in torchvision's layout (NHWC), and the CIFAR ResNet-32 (option-A
shortcuts), shared by the classification papers and the detection / pose backbones.

Names follow torchvision's state_dict (`conv1`, `bn1`, `layer1_0/conv1`, `downsample_0`,
`fc`) so conversion is a rename table (`torchvision_rules`; on the command line
`python -m common.convert torchvision resnet50.pth OUT_DIR`). BatchNorm statistics live in
`batch_stats` (PyTorch momentum 0.1 == Flax momentum 0.9, eps 1e-5). Padding is explicit
and symmetric: Flax's 'SAME' pads asymmetrically at stride 2 and would break equality.
Both models take `features=` (common/layers/features.py); their taps are in their docstrings.
"""
from typing import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.layers.features import Taps

# He fan-out init of torchvision's ResNet convs: N(0, 2 / (k*k*out)).
he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
he_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
torch_linear_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")   # nn.Linear's U(+-1/sqrt(in))

# A classifier head factory: head(num_classes, dtype=..., name=..., kernel_init=...) -> a module
# mapping pooled features [B, D] to logits [B, C]. None: a plain nn.Dense with bias.
Head = Callable[..., nn.Module]
NORMS = ("batch", "frozen")


def classifier(head: Head | None, num_classes: int, name: str, dtype, kernel_init):
    if head is not None:
        return head(num_classes, dtype=dtype, name=name, kernel_init=kernel_init)
    return nn.Dense(num_classes, dtype=dtype, name=name,
                    kernel_init=nn.with_logical_partitioning(kernel_init, ("embed", "classes")))


def conv(features, kernel, stride=1, padding=0, groups=1, name=None, dtype=jnp.float32, init=he_fan_out,
         dilation=1):
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=[(padding, padding)] * 2,
                   kernel_dilation=(dilation, dilation), feature_group_count=groups, use_bias=False,
                   dtype=dtype, name=name,
                   kernel_init=nn.with_logical_partitioning(init, (None, None, "conv_in", "conv_out")))


class FrozenBatchNorm(nn.Module):
    """torchvision.ops.FrozenBatchNorm2d: y = (x - mean) / sqrt(var + eps) * scale + bias, with
    fixed statistics and affine. All four arrays live in `batch_stats` (nn.BatchNorm's names),
    never in `params`, so no optimizer sees them."""
    epsilon: float = 1e-5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        def stat(name, init):
            return self.variable("batch_stats", name, init, (x.shape[-1],), jnp.float32).value
        scale = stat("scale", jnp.ones) * jax.lax.rsqrt(stat("var", jnp.ones) + self.epsilon)
        shift = stat("bias", jnp.zeros) - stat("mean", jnp.zeros) * scale
        return x.astype(self.dtype) * scale.astype(self.dtype) + shift.astype(self.dtype)


def bn(train: bool, name: str, dtype=jnp.float32, zero_init: bool = False, norm: str = "batch"):
    """`norm`: "batch" (nn.BatchNorm, statistics updated in training) or "frozen" (FrozenBatchNorm)."""
    if norm == "frozen":
        return FrozenBatchNorm(dtype=dtype, name=name)
    if norm != "batch":
        raise ValueError(f"unknown norm {norm!r}: {' | '.join(NORMS)}")
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name,
                        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones)


class Bottleneck(nn.Module):
    """torchvision Bottleneck (v1.5: the stride and the dilation on the 3x3 conv)."""
    planes: int
    stride: int = 1
    groups: int = 1
    base_width: int = 64
    downsample: bool = False
    dtype: jnp.dtype = jnp.float32
    dilation: int = 1
    norm: str = "batch"
    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        def norm(name):
            return bn(train, name, self.dtype, norm=self.norm)
        width = int(self.planes * self.base_width / 64) * self.groups
        y = nn.relu(norm("bn1")(conv(width, 1, name="conv1", dtype=self.dtype)(x)))
        y = conv(width, 3, self.stride, self.dilation, self.groups, name="conv2", dtype=self.dtype,
                 dilation=self.dilation)(y)
        y = nn.relu(norm("bn2")(y))
        y = norm("bn3")(conv(self.planes * 4, 1, name="conv3", dtype=self.dtype)(y))
        if self.downsample:
            x = norm("downsample_1")(conv(self.planes * 4, 1, self.stride, name="downsample_0", dtype=self.dtype)(x))
        return nn.relu(x + y)


class BasicBlock(nn.Module):
    """torchvision BasicBlock (ResNet-18 / 34): two 3x3 convs; no groups, no dilation."""
    planes: int
    stride: int = 1
    groups: int = 1
    base_width: int = 64
    downsample: bool = False
    dtype: jnp.dtype = jnp.float32
    dilation: int = 1
    norm: str = "batch"
    expansion = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        if (self.groups, self.base_width, self.dilation) != (1, 64, 1):
            raise ValueError("BasicBlock supports only groups=1, base_width=64 and no dilation (as torchvision)")

        def norm(name):
            return bn(train, name, self.dtype, norm=self.norm)
        y = nn.relu(norm("bn1")(conv(self.planes, 3, self.stride, 1, name="conv1", dtype=self.dtype)(x)))
        y = norm("bn2")(conv(self.planes, 3, 1, 1, name="conv2", dtype=self.dtype)(y))
        if self.downsample:
            x = norm("downsample_1")(conv(self.planes, 1, self.stride, name="downsample_0", dtype=self.dtype)(x))
        return nn.relu(x + y)


BLOCKS = {"bottleneck": Bottleneck, "basic": BasicBlock}


def resnet_stage(x, planes: int, blocks: int, stride: int, groups: int, base_width: int, name: str,
                 train: bool, dtype, *, block: type[nn.Module] = Bottleneck, dilation: int = 1,
                 first_dilation: int = 1, norm: str = "batch"):
    """torchvision `_make_layer`: the first block strides (or, dilated, keeps the previous
    stage's dilation `first_dilation`); the others use `dilation`."""
    for i in range(blocks):
        x = block(planes, stride if i == 0 else 1, groups, base_width,
                  downsample=i == 0 and (stride != 1 or x.shape[-1] != planes * block.expansion), dtype=dtype,
                  dilation=first_dilation if i == 0 else dilation, norm=norm, name=f"{name}_{i}")(x, train)
    return x


class ResNetStem(nn.Module):
    dtype: jnp.dtype = jnp.float32
    norm: str = "batch"

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(64, 7, 2, 3, name="conv1", dtype=self.dtype)(x)
        x = nn.relu(bn(train, "bn1", self.dtype, norm=self.norm)(x))
        return nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))


class ResNet(nn.Module):
    """torchvision ResNet / ResNeXt; `head` replaces the Linear classifier (see `Head`).

    Backbone options (torchvision / DETR models/backbone.py / mmdet ResNet): `norm="frozen"`
    puts FrozenBatchNorm everywhere; `frozen_stages=k` freezes the stem and layer1..k (DETR:
    k=1), which get no gradient (jax.lax.stop_gradient: nothing is computed backward through
    them) and keep BatchNorm in inference mode (mmdet's `_freeze_stages`);
    `replace_stride_with_dilation` for layer2..4 as torchvision's (DC5: (False, False, True)).

    Feature taps: "stem" (after the max-pool, stride 4), "layer1" .. "layer4" (strides 4, 8,
    16, 32, less where dilated), "pooled" [B, 512 * expansion], "head" (the logits)."""
    layers: Sequence[int] = (3, 4, 6, 3)
    groups: int = 1
    base_width: int = 64
    planes: Sequence[int] = (64, 128, 256, 512)
    num_classes: int = 1000
    dtype: jnp.dtype = jnp.float32
    head: Head | None = None
    block: str = "bottleneck"
    norm: str = "batch"
    frozen_stages: int = 0
    replace_stride_with_dilation: Sequence[bool] = (False, False, False)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"layer{i + 1}" for i in range(len(self.layers)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        taps = Taps(features, self.stage_names)

        def frozen(stage: int) -> bool:     # the stem freezes with layer1
            return max(stage, 1) <= self.frozen_stages

        x = ResNetStem(self.dtype, self.norm, name="stem")(x.astype(self.dtype), train and not frozen(0))
        x = jax.lax.stop_gradient(x) if frozen(0) else x
        if taps.add("stem", x):
            return taps.out
        dilation = 1
        for i, (blocks, planes) in enumerate(zip(self.layers, self.planes)):
            stride, previous = (1 if i == 0 else 2), dilation
            if i > 0 and self.replace_stride_with_dilation[i - 1]:
                dilation, stride = dilation * stride, 1
            x = resnet_stage(x, planes, blocks, stride, self.groups, self.base_width, f"layer{i + 1}",
                             train and not frozen(i + 1), self.dtype, block=BLOCKS[self.block], dilation=dilation,
                             first_dilation=previous, norm=self.norm)
            x = jax.lax.stop_gradient(x) if frozen(i + 1) else x
            if taps.add(f"layer{i + 1}", x):
                return taps.out
        x = jnp.mean(x, axis=(1, 2))            # AvgPool2d(7) at 224 == global mean
        if taps.add("pooled", x):
            return taps.out
        return taps.finish(classifier(self.head, self.num_classes, "fc", self.dtype, torch_linear_init)(x))


class BasicBlockA(nn.Module):
    """CIFAR BasicBlock with the parameter-free option-A shortcut (subsample + zero-pad channels;
    planes/4 on each side for the usual doubling, split as RIDE does for other widths)."""
    planes: int
    stride: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = nn.relu(bn(train, "bn1", self.dtype)(conv(self.planes, 3, self.stride, 1, name="conv1",
                                                      dtype=self.dtype, init=he_fan_in)(x)))
        y = bn(train, "bn2", self.dtype)(conv(self.planes, 3, 1, 1, name="conv2", dtype=self.dtype,
                                              init=he_fan_in)(y))
        if self.stride != 1 or x.shape[-1] != self.planes:
            extra = self.planes - x.shape[-1]
            x = jnp.pad(x[:, ::self.stride, ::self.stride], ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        return nn.relu(x + y)


def cifar_stage(x, planes: int, blocks: int, stride: int, name: str, train: bool, dtype):
    for i in range(blocks):
        x = BasicBlockA(planes, stride if i == 0 else 1, dtype, name=f"{name}_{i}")(x, train)
    return x


def cifar_stem(x, width: int, train: bool, dtype):
    """conv3x3 -> BN -> ReLU, as `conv1` / `bn1` of the calling module."""
    x = conv(width, 3, 1, 1, name="conv1", dtype=dtype, init=he_fan_in)(x.astype(dtype))
    return nn.relu(bn(train, "bn1", dtype)(x))


class CifarResNet(nn.Module):
    """ResNet-32 of kaidic/LDAM-DRW (5 blocks per stage, widths 16/32/64); `head` replaces the
    Linear classifier (see `Head`). Feature taps: "stem", "layer1" .. "layer3" (strides 1, 2,
    4), "pooled" [B, 64], "head" (the logits)."""
    blocks: int = 5
    widths: Sequence[int] = (16, 32, 64)
    num_classes: int = 10
    dtype: jnp.dtype = jnp.float32
    head: Head | None = None

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"layer{s + 1}" for s in range(len(self.widths)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        taps = Taps(features, self.stage_names)
        x = cifar_stem(x, self.widths[0], train, self.dtype)
        if taps.add("stem", x):
            return taps.out
        for s, w in enumerate(self.widths):
            x = cifar_stage(x, w, self.blocks, 1 if s == 0 else 2, f"layer{s + 1}", train, self.dtype)
            if taps.add(f"layer{s + 1}", x):
                return taps.out
        x = jnp.mean(x, axis=(1, 2))
        if taps.add("pooled", x):
            return taps.out
        return taps.finish(classifier(self.head, self.num_classes, "linear", self.dtype, he_fan_in)(x))


def resnet18(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((2, 2, 2, 2), num_classes=num_classes, dtype=dtype, block="basic", **kw)


def resnet34(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((3, 4, 6, 3), num_classes=num_classes, dtype=dtype, block="basic", **kw)


def resnet50(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((3, 4, 6, 3), 1, 64, num_classes=num_classes, dtype=dtype, **kw)


def resnet101(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((3, 4, 23, 3), 1, 64, num_classes=num_classes, dtype=dtype, **kw)


def resnext50_32x4d(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((3, 4, 6, 3), 32, 4, num_classes=num_classes, dtype=dtype, **kw)


def resnet32(num_classes=10, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes=num_classes, dtype=dtype, **kw)


TORCHVISION = {f.__name__: f for f in (resnet18, resnet34, resnet50, resnet101, resnext50_32x4d)}


def torchvision_rules(norm: str = "batch"):
    """common.convert rules: torchvision ResNet/ResNeXt state_dict -> these modules; with
    norm="frozen" the BatchNorm affines go to `batch_stats` too (FrozenBatchNorm)."""
    from common.convert import conv_kernel, identity, linear_kernel
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: {' | '.join(NORMS)}")
    affine = "batch_stats" if norm == "frozen" else "params"
    blk = r"layer(\d)\.(\d+)\."
    bn_map = [("weight", affine, "scale"), ("bias", affine, "bias"),
              ("running_mean", "batch_stats", "mean"), ("running_var", "batch_stats", "var")]
    rules = [(r"conv1\.weight", "params/stem/conv1/kernel", conv_kernel),
             (blk + r"(conv\d)\.weight", r"params/layer\1_\2/\3/kernel", conv_kernel),
             (blk + r"downsample\.0\.weight", r"params/layer\1_\2/downsample_0/kernel", conv_kernel),
             (r"fc\.weight", "params/fc/kernel", linear_kernel),
             (r"fc\.bias", "params/fc/bias", identity)]
    for src, col, dst in bn_map:
        rules += [(rf"bn1\.{src}", f"{col}/stem/bn1/{dst}", identity),
                  (blk + rf"(bn\d)\.{src}", rf"{col}/layer\1_\2/\3/{dst}", identity),
                  (blk + rf"downsample\.1\.{src}", rf"{col}/layer\1_\2/downsample_1/{dst}", identity)]
    return rules


TORCHVISION_IGNORE = (r".*num_batches_tracked",)


def convert_torchvision(state_dict: Mapping[str, np.ndarray], arch: str = "resnet50", norm: str = "batch") -> dict:
    """A torchvision ResNet state_dict (with or without `fc`) -> the variables of
    `TORCHVISION[arch](norm=norm)`, checked leaf by leaf against the model."""
    from common.convert import check_against, convert_with_rules
    if arch not in TORCHVISION:
        raise KeyError(f"unknown torchvision architecture {arch!r}; known: {sorted(TORCHVISION)}")
    variables = convert_with_rules(state_dict, torchvision_rules(norm), TORCHVISION_IGNORE)
    has_fc = "fc.weight" in state_dict
    model = TORCHVISION[arch](num_classes=state_dict["fc.weight"].shape[0] if has_fc else 1000, norm=norm)
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                                                 features=None if has_fc else ("layer4",)))
    check_against(variables, nn.meta.unbox(expected))
    return variables
