"""ResNet / ResNeXt in torchvision's layout (NHWC), and the CIFAR ResNet-32 (option-A
shortcuts), shared by longtail/ (and the detection/pose papers' backbones).

Names follow torchvision's state_dict (`conv1`, `bn1`, `layer1_0/conv1`, `downsample_0`,
`fc`) so conversion is a rename table. BatchNorm statistics live in `batch_stats`
(PyTorch momentum 0.1 == Flax momentum 0.9, eps 1e-5). Padding is explicit and
symmetric: Flax's 'SAME' pads asymmetrically at stride 2 and would break equality.
"""
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

# He fan-out init of torchvision's ResNet convs: N(0, 2 / (k*k*out)).
he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
he_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
torch_linear_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")   # nn.Linear's U(+-1/sqrt(in))

# A classifier head factory: head(num_classes, dtype=..., name=..., kernel_init=...) -> a module
# mapping pooled features [B, D] to logits [B, C]. None: a plain nn.Dense with bias.
Head = Callable[..., nn.Module]


def classifier(head: Head | None, num_classes: int, name: str, dtype, kernel_init):
    if head is not None:
        return head(num_classes, dtype=dtype, name=name, kernel_init=kernel_init)
    return nn.Dense(num_classes, dtype=dtype, name=name,
                    kernel_init=nn.with_logical_partitioning(kernel_init, ("embed", "classes")))


def conv(features, kernel, stride=1, padding=0, groups=1, name=None, dtype=jnp.float32, init=he_fan_out):
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=[(padding, padding)] * 2,
                   feature_group_count=groups, use_bias=False, dtype=dtype, name=name,
                   kernel_init=nn.with_logical_partitioning(init, (None, None, "conv_in", "conv_out")))


def bn(train: bool, name: str, dtype=jnp.float32, zero_init: bool = False):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name,
                        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones)


class Bottleneck(nn.Module):
    planes: int
    stride: int = 1
    groups: int = 1
    base_width: int = 64
    downsample: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        width = int(self.planes * self.base_width / 64) * self.groups
        y = nn.relu(bn(train, "bn1", self.dtype)(conv(width, 1, name="conv1", dtype=self.dtype)(x)))
        y = conv(width, 3, self.stride, 1, self.groups, name="conv2", dtype=self.dtype)(y)
        y = nn.relu(bn(train, "bn2", self.dtype)(y))
        y = bn(train, "bn3", self.dtype)(conv(self.planes * 4, 1, name="conv3", dtype=self.dtype)(y))
        if self.downsample:
            x = conv(self.planes * 4, 1, self.stride, name="downsample_0", dtype=self.dtype)(x)
            x = bn(train, "downsample_1", self.dtype)(x)
        return nn.relu(x + y)


def resnet_stage(x, planes: int, blocks: int, stride: int, groups: int, base_width: int, name: str,
                 train: bool, dtype):
    for i in range(blocks):
        x = Bottleneck(planes, stride if i == 0 else 1, groups, base_width,
                       downsample=i == 0 and (stride != 1 or x.shape[-1] != planes * 4), dtype=dtype,
                       name=f"{name}_{i}")(x, train)
    return x


class ResNetStem(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(64, 7, 2, 3, name="conv1", dtype=self.dtype)(x)
        x = nn.relu(bn(train, "bn1", self.dtype)(x))
        return nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))


class ResNet(nn.Module):
    """torchvision ResNet-50 / ResNeXt-50 (32x4d). `num_classes=0` returns pooled features;
    `head` replaces the Linear classifier (see `Head`)."""
    layers: Sequence[int] = (3, 4, 6, 3)
    groups: int = 1
    base_width: int = 64
    planes: Sequence[int] = (64, 128, 256, 512)
    num_classes: int = 1000
    dtype: jnp.dtype = jnp.float32
    head: Head | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = ResNetStem(self.dtype, name="stem")(x.astype(self.dtype), train)
        for i, (blocks, planes) in enumerate(zip(self.layers, self.planes)):
            x = resnet_stage(x, planes, blocks, 1 if i == 0 else 2, self.groups, self.base_width,
                             f"layer{i + 1}", train, self.dtype)
        x = jnp.mean(x, axis=(1, 2))            # AvgPool2d(7) at 224 == global mean
        if not self.num_classes:
            return x
        return classifier(self.head, self.num_classes, "fc", self.dtype, torch_linear_init)(x)


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
    """ResNet-32 of kaidic/LDAM-DRW (5 blocks per stage, widths 16/32/64). `num_classes=0`
    returns the 64-d pooled features; `head` replaces the Linear classifier (see `Head`)."""
    blocks: int = 5
    widths: Sequence[int] = (16, 32, 64)
    num_classes: int = 10
    dtype: jnp.dtype = jnp.float32
    head: Head | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = cifar_stem(x, self.widths[0], train, self.dtype)
        for s, w in enumerate(self.widths):
            x = cifar_stage(x, w, self.blocks, 1 if s == 0 else 2, f"layer{s + 1}", train, self.dtype)
        x = jnp.mean(x, axis=(1, 2))
        if not self.num_classes:
            return x
        return classifier(self.head, self.num_classes, "linear", self.dtype, he_fan_in)(x)


def resnet50(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((3, 4, 6, 3), 1, 64, num_classes=num_classes, dtype=dtype, **kw)


def resnext50_32x4d(num_classes=1000, dtype=jnp.float32, **kw):
    return ResNet((3, 4, 6, 3), 32, 4, num_classes=num_classes, dtype=dtype, **kw)


def resnet32(num_classes=10, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes=num_classes, dtype=dtype, **kw)


def torchvision_rules():
    """common.convert rules: torchvision ResNet/ResNeXt state_dict -> these modules."""
    from common.convert import conv_kernel, identity, linear_kernel
    blk = r"layer(\d)\.(\d+)\."
    bn_map = [("weight", "params", "scale"), ("bias", "params", "bias"),
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
