"""The survey's two-branch (Megvii-Nanjing/BBN) and multi-expert models (RIDE / SADE,
Ensemble-codebase model/fb_resnets/Expert_ResNeXt.py), built from the
blocks of common/layers/resnet.py, for both backbone families (torchvision ResNet /
ResNeXt, and the CIFAR ResNet with option-A shortcuts).

Multi-expert (RIDE / SADE, Ensemble-codebase `Expert_ResNeXt`, `reduce_dimension`): the
early stages are shared, the last two stages are per expert with 3/4 of the width
(ImageNet planes 192/384; CIFAR widths 24/48), each expert with its own cosine classifier
(s = 30). Output {"logits": sum_e w_e z_e [B, C], "expert_logits": z [B, E, C],
"features": [B, E, D]} with aggregation weights w in the `aggregation` collection: 1/E (the
expert mean of RIDE and SADE) unless SADE's test-time aggregation (longtail.sade_tta) set them.
Names follow the official state_dict: `layer3s_{e}_{i}`, `linears_{e}`.

BBN: the backbone runs every block but the last once, then two copies of the last block,
`cb_block` (conventional) and `rb_block` (re-balancing); one `classifier` Linear(2D, C).
Training (two images): {"conventional": W [2 f_c; 0] + b, "rebalancing": W [0; 2 f_r] + b},
so that alpha * conventional + (1 - alpha) * rebalancing = W [2 alpha f_c; 2 (1 - alpha) f_r] + b,
BBN's mixed logits for any alpha (the task applies cumulative learning); inference:
W [f_c; f_r] + b on one image.

Feature taps (common/layers/features.py): the shared stages as the backbone's ("stem",
"layer1", ...); multi-expert: each expert's stage maps under their module names
("layer3s_0", ...), "pooled" [B, E, D], "head" (the output dict); BBN: "cb_block",
"rb_block" (the two branches' maps; BBN's last shared stage lacks its last block), "pooled"
[B, 2D] and "head" (the inference logits), all on the inference path (both branches on `x`).
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from common.layers.features import Taps
from common.layers.resnet import (BasicBlockA, Bottleneck, Head, ResNetStem, cifar_stage, cifar_stem, classifier,
                                  resnet_stage, torch_linear_init)
from longtail.heads import NormedLinear


def _expert_outputs(module: nn.Module, features: list, num_classes: int, head: Head | None, scale: float,
                    dtype) -> dict:
    n = len(features)
    weights = module.variable("aggregation", "weights", lambda: jnp.full((n,), 1.0 / n, jnp.float32)).value
    logits = []
    for e, f in enumerate(features):
        name = f"linears_{e}"
        logits.append(NormedLinear(num_classes, scale, dtype, name=name)(f) if head is None
                      else head(num_classes, dtype=dtype, name=name, kernel_init=torch_linear_init)(f))
    stacked = jnp.stack(logits, 1)
    return {"logits": jnp.einsum("bec,e->bc", stacked, weights.astype(stacked.dtype)), "expert_logits": stacked,
            "features": jnp.stack(features, 1)}


def _expert_taps(features, stage_names: tuple, expert_stages: int, num_experts: int) -> Taps:
    """Taps of a multi-expert model: the shared stages, then each expert's `layer{k}s_{e}`."""
    first = len(stage_names)
    experts = tuple(f"layer{first + j}s_{e}" for e in range(num_experts) for j in range(expert_stages))
    return Taps(features, stage_names, experts + ("pooled", "head"))


class MultiExpertResNet(nn.Module):
    """RIDE / SADE ResNet-50 / ResNeXt-50: shared stem, layer1, layer2; per expert layer3s /
    layer4s with `expert_planes`; `head` None: NormedLinear with s = `scale`."""
    layers: Sequence[int] = (3, 4, 6, 3)
    groups: int = 1
    base_width: int = 64
    planes: Sequence[int] = (64, 128)
    expert_planes: Sequence[int] = (192, 384)
    num_experts: int = 3
    num_classes: int = 1000
    scale: float = 30.0
    head: Head | None = None
    dtype: jnp.dtype = jnp.float32

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"layer{i + 1}" for i in range(len(self.planes)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        taps = _expert_taps(features, self.stage_names, len(self.expert_planes), self.num_experts)
        x = ResNetStem(self.dtype, name="stem")(x.astype(self.dtype), train)
        if taps.add("stem", x):
            return taps.out
        for i, p in enumerate(self.planes):
            x = resnet_stage(x, p, self.layers[i], 1 if i == 0 else 2, self.groups, self.base_width,
                             f"layer{i + 1}", train, self.dtype)
            if taps.add(f"layer{i + 1}", x):
                return taps.out
        pooled = []
        for e in range(self.num_experts):
            y = x
            for j, p in enumerate(self.expert_planes):
                k = len(self.planes) + j
                y = resnet_stage(y, p, self.layers[k], 2, self.groups, self.base_width, f"layer{k + 1}s_{e}",
                                 train, self.dtype)
                if taps.add(f"layer{k + 1}s_{e}", y):
                    return taps.out
            pooled.append(jnp.mean(y, axis=(1, 2)))
        if taps.add("pooled", jnp.stack(pooled, 1)):
            return taps.out
        return taps.finish(_expert_outputs(self, pooled, self.num_classes, self.head, self.scale, self.dtype))


class MultiExpertCifarResNet(nn.Module):
    """RIDE's CIFAR ResNet-32 (`ResNet_s`, reduce_dimension): shared conv1 + layer1, per expert
    layer2s (24) / layer3s (48)."""
    blocks: int = 5
    widths: Sequence[int] = (16,)
    expert_widths: Sequence[int] = (24, 48)
    num_experts: int = 3
    num_classes: int = 10
    scale: float = 30.0
    head: Head | None = None
    dtype: jnp.dtype = jnp.float32

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"layer{s + 1}" for s in range(len(self.widths)))

    @nn.compact
    def __call__(self, x, train: bool = False, features=None):
        taps = _expert_taps(features, self.stage_names, len(self.expert_widths), self.num_experts)
        x = cifar_stem(x, self.widths[0], train, self.dtype)
        if taps.add("stem", x):
            return taps.out
        for s, w in enumerate(self.widths):
            x = cifar_stage(x, w, self.blocks, 1 if s == 0 else 2, f"layer{s + 1}", train, self.dtype)
            if taps.add(f"layer{s + 1}", x):
                return taps.out
        pooled = []
        for e in range(self.num_experts):
            y = x
            for j, w in enumerate(self.expert_widths):
                name = f"layer{len(self.widths) + j + 1}s_{e}"
                y = cifar_stage(y, w, self.blocks, 2, name, train, self.dtype)
                if taps.add(name, y):
                    return taps.out
            pooled.append(jnp.mean(y, axis=(1, 2)))
        if taps.add("pooled", jnp.stack(pooled, 1)):
            return taps.out
        return taps.finish(_expert_outputs(self, pooled, self.num_classes, self.head, self.scale, self.dtype))


def _branches(taps: Taps, branches: Sequence[str], block) -> list | dict:
    """The pooled features of each branch's last block `block(branch)`, or the taps once complete."""
    pooled = []
    for b in branches:
        y = block(b)
        if taps.add(f"{b}_block", y):
            return taps.out
        pooled.append(jnp.mean(y, axis=(1, 2)))
    return pooled


class BBNCifarBackbone(nn.Module):
    """CIFAR ResNet whose last block exists twice (`cb_block`, `rb_block`); returns the pooled
    features of the requested branches."""
    blocks: int = 5
    widths: Sequence[int] = (16, 32, 64)
    dtype: jnp.dtype = jnp.float32

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"layer{s + 1}" for s in range(len(self.widths)))

    @nn.compact
    def __call__(self, x, train: bool = False, branches: Sequence[str] = ("cb", "rb"), taps: Taps | None = None):
        """`taps`: BBN's, when it asks for features."""
        taps = taps or Taps(None, ())
        x = cifar_stem(x, self.widths[0], train, self.dtype)
        if taps.add("stem", x):
            return taps.out
        last = len(self.widths) - 1
        for s, w in enumerate(self.widths):
            x = cifar_stage(x, w, self.blocks - (s == last), 1 if s == 0 else 2, f"layer{s + 1}", train, self.dtype)
            if taps.add(f"layer{s + 1}", x):
                return taps.out
        stride = 2 if self.blocks == 1 and last > 0 else 1
        return _branches(taps, branches, lambda b: BasicBlockA(self.widths[-1], stride, self.dtype, name=f"{b}_block")(
            x, train))


class BBNResNetBackbone(nn.Module):
    """torchvision ResNet / ResNeXt whose last bottleneck exists twice (`cb_block`, `rb_block`)."""
    layers: Sequence[int] = (3, 4, 6, 3)
    groups: int = 1
    base_width: int = 64
    planes: Sequence[int] = (64, 128, 256, 512)
    dtype: jnp.dtype = jnp.float32

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("stem",) + tuple(f"layer{i + 1}" for i in range(len(self.layers)))

    @nn.compact
    def __call__(self, x, train: bool = False, branches: Sequence[str] = ("cb", "rb"), taps: Taps | None = None):
        """`taps`: BBN's, when it asks for features."""
        taps = taps or Taps(None, ())
        x = ResNetStem(self.dtype, name="stem")(x.astype(self.dtype), train)
        if taps.add("stem", x):
            return taps.out
        last = len(self.layers) - 1
        for i, (blocks, planes) in enumerate(zip(self.layers, self.planes)):
            x = resnet_stage(x, planes, blocks - (i == last), 1 if i == 0 else 2, self.groups, self.base_width,
                             f"layer{i + 1}", train, self.dtype)
            if taps.add(f"layer{i + 1}", x):
                return taps.out
        stride = 2 if self.layers[-1] == 1 and last > 0 else 1
        downsample = stride != 1 or x.shape[-1] != self.planes[-1] * 4
        return _branches(taps, branches, lambda b: Bottleneck(
            self.planes[-1], stride, self.groups, self.base_width, downsample, self.dtype, name=f"{b}_block")(x, train))


class BBN(nn.Module):
    """Bilateral-branch network over a BBN backbone (see the module docstring)."""
    backbone: nn.Module
    num_classes: int = 10
    dtype: jnp.dtype = jnp.float32

    @property
    def stage_names(self) -> tuple[str, ...]:
        return self.backbone.stage_names

    @nn.compact
    def __call__(self, x, train: bool = False, rebalancing_images=None, features=None):
        fc = classifier(None, self.num_classes, "classifier", self.dtype, torch_linear_init)
        if not train or features is not None:
            taps = Taps(features, self.stage_names, ("cb_block", "rb_block", "pooled", "head"))
            branches = self.backbone(x, train, ("cb", "rb"), taps)
            if taps.done:
                return taps.out
            pooled = jnp.concatenate(branches, axis=-1)
            if taps.add("pooled", pooled):
                return taps.out
            return taps.finish(fc(pooled))
        (f_c,) = self.backbone(x, train, ("cb",))
        (f_r,) = self.backbone(x if rebalancing_images is None else rebalancing_images, train, ("rb",))
        return {"conventional": fc(jnp.concatenate([2.0 * f_c, jnp.zeros_like(f_r)], -1)),
                "rebalancing": fc(jnp.concatenate([jnp.zeros_like(f_c), 2.0 * f_r], -1))}


def multi_expert_resnet32(num_classes=10, dtype=jnp.float32, **kw):
    return MultiExpertCifarResNet(num_classes=num_classes, dtype=dtype, **kw)


def multi_expert_resnet50(num_classes=1000, dtype=jnp.float32, **kw):
    return MultiExpertResNet(num_classes=num_classes, dtype=dtype, **kw)


def multi_expert_resnext50_32x4d(num_classes=1000, dtype=jnp.float32, **kw):
    return MultiExpertResNet(groups=32, base_width=4, num_classes=num_classes, dtype=dtype, **kw)


def bbn_resnet32(num_classes=10, dtype=jnp.float32, **kw):
    return BBN(BBNCifarBackbone(dtype=dtype, **kw), num_classes=num_classes, dtype=dtype)


def bbn_resnet50(num_classes=1000, dtype=jnp.float32, **kw):
    return BBN(BBNResNetBackbone(dtype=dtype, **kw), num_classes=num_classes, dtype=dtype)


def bbn_resnext50_32x4d(num_classes=1000, dtype=jnp.float32, **kw):
    return BBN(BBNResNetBackbone(groups=32, base_width=4, dtype=dtype, **kw), num_classes=num_classes, dtype=dtype)


MODELS = {f.__name__: f for f in (multi_expert_resnet32, multi_expert_resnet50, multi_expert_resnext50_32x4d,
                                  bbn_resnet32, bbn_resnet50, bbn_resnext50_32x4d)}
