"""`volo_token_label`: VOLO's token-labeling objective with MixToken (sail-sg/volo main.py,
loss/cross_entropy.py TokenLabelCrossEntropy; spec §5.1–5.3).

L = CE_soft(head(cls), t_cls) + 0.5 * CE_soft(aux_head(tokens), t_dense), averaged over
the batch and over every token. MixToken replaces a box of tokens (one box per batch,
on the stride-16 grid) by the batch-reversed sample's; the model swaps the aux tokens of
the box back, so every aux token is again aligned with its own image, and the class
target is mixed by the box area.

Dense targets: when the batch carries an annotator's top-k token labels
(`token_topk_logits`, `token_topk_index`: [B, k, h, w], already cropped/resized to the
token grid by the input pipeline) they are scattered into a [B, h, w, classes] logit map,
softmaxed and smoothed, as tlt's mixup_target does; otherwise (the official fallback)
every token's target is its image's smoothed one-hot label.
"""
import jax
import jax.numpy as jnp
import optax

from common.classification import ClassificationTask
from common.data.mixup import smooth_one_hot
from common.tasks import register_task


def mixtoken_box(rng, grid: int):
    """Official MixToken box: lam ~ Beta(1, 1), side int(grid * sqrt(1 - lam)), centre uniform,
    clipped. Returns (x0, y0, x1, y1) int32 and the area-corrected lam' = 1 - area / grid^2."""
    k_lam, k_x, k_y = jax.random.split(rng, 3)
    lam = jax.random.beta(k_lam, 1.0, 1.0)
    cut = (grid * jnp.sqrt(1.0 - lam)).astype(jnp.int32)
    cx, cy = jax.random.randint(k_x, (), 0, grid), jax.random.randint(k_y, (), 0, grid)
    x0, x1 = jnp.clip(cx - cut // 2, 0, grid), jnp.clip(cx + cut // 2, 0, grid)
    y0, y1 = jnp.clip(cy - cut // 2, 0, grid), jnp.clip(cy + cut // 2, 0, grid)
    area = (x1 - x0) * (y1 - y0)
    return jnp.stack([x0, y0, x1, y1]).astype(jnp.int32), 1.0 - area / (grid * grid)


def dense_token_targets(topk_logits, topk_index, num_classes: int, smoothing: float):
    """[B, k, h, w] annotator top-k logits and class indices -> [B, h, w, classes] soft
    targets: non-top-k classes get logit 0, softmax over classes, then label smoothing."""
    one_hot = jax.nn.one_hot(topk_index, num_classes, dtype=jnp.float32)          # B k h w C
    logits = jnp.einsum("bkhw,bkhwc->bhwc", topk_logits.astype(jnp.float32), one_hot)
    probs = jax.nn.softmax(logits, axis=-1)
    off = smoothing / num_classes
    return probs * (1.0 - smoothing) + off


def soft_ce(logits, targets):
    return jnp.mean(optax.softmax_cross_entropy(logits.astype(jnp.float32), targets))


@register_task("volo_token_label")
class TokenLabelTask(ClassificationTask):
    aux_weight = 0.5       # TokenLabelCrossEntropy: 1.0 * cls + 0.5 * dense (official defaults)

    def mix(self, rng, batch):
        grid = int(self.config.data.image_size) // 16
        smoothing = self.config.mixup.label_smoothing
        box, lam = mixtoken_box(rng, grid)
        labels = smooth_one_hot(batch["label"], self.num_classes, smoothing)
        cls_targets = labels * lam + labels[::-1] * (1.0 - lam)
        return batch["image"], cls_targets, {"mix_box": box}

    def loss(self, outputs, targets, batch):
        smoothing = self.config.mixup.label_smoothing
        aux = outputs["aux_logits"]                                             # B h w C
        if "token_topk_logits" in batch:
            dense = dense_token_targets(batch["token_topk_logits"], batch["token_topk_index"],
                                        self.num_classes, smoothing)
        else:
            own = smooth_one_hot(batch["label"], self.num_classes, smoothing)
            dense = jnp.broadcast_to(own[:, None, None, :], aux.shape)
        cls_loss = soft_ce(outputs["logits"], targets)
        aux_loss = soft_ce(aux.reshape(-1, aux.shape[-1]), dense.reshape(-1, dense.shape[-1]))
        return cls_loss + self.aux_weight * aux_loss, {"train/cls_loss": cls_loss, "train/aux_loss": aux_loss}
