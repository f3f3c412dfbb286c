"""`volo_token_label`: VOLO's token-labeling objective with MixToken (sail-sg/volo main.py,
loss/cross_entropy.py TokenLabelCrossEntropy, models/volo.py VOLO.forward's MixToken; the targets
of zihangJiang/TokenLabeling tlt/data/mixup.py).

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
import numpy as np
import optax
from PIL import Image

from common.classification import ClassificationTask
from common.data import transforms
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


def crop_token_labels(maps: np.ndarray, box, image_hw, flip: bool, grid: int) -> np.ndarray:
    """The annotator's [2, k, mh, mw] map (plane 0 top-k logits, plane 1 class indices), cut
    to the image's crop box (x, y, w, h in pixels of the `image_hw` image) and sampled at the
    centres of the grid x grid tokens. The official loader ROI-aligns the box (and passes its
    corners transposed, tlt/data/mixup.py); we sample the box as the image is cropped."""
    H, W = image_hw
    mh, mw = maps.shape[-2:]
    if flip:
        maps = maps[..., ::-1]
    x, y, w, h = box
    centres = (np.arange(grid) + 0.5) / grid
    rows = np.clip(((y + centres * h) / H * mh).astype(int), 0, mh - 1)
    cols = np.clip(((x + centres * w) / W * mw).astype(int), 0, mw - 1)
    return maps[:, :, rows[:, None], cols[None, :]]


def soft_ce(logits, targets):
    return jnp.mean(optax.softmax_cross_entropy(logits.astype(jnp.float32), targets))


@register_task("volo_token_label")
class TokenLabelTask(ClassificationTask):
    aux_weight = 0.5       # TokenLabelCrossEntropy: 1.0 * cls + 0.5 * dense (official defaults)

    def train_element(self, record, rng):
        """Records with a `token_label` map ([2, k, h, w]) follow the official token-label loader:
        flip -> RandAugment (image only) -> RandomResizedCrop, the same flip and crop applied to
        the label map; without one, the standard transform."""
        if "token_label" not in record:
            return super().train_element(record, rng)
        d = self.config.data
        if not hasattr(self, "_ra"):
            self._ra = transforms.RandAugment(d.randaugment) if d.randaugment else None
        img = transforms.to_pil(record["image"])
        flip = rng.random() < d.hflip
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self._ra is not None:
            img = self._ra(img, rng)
        W, H = img.size
        box = transforms.rrc_box(W, H, tuple(d.rrc_scale), tuple(d.rrc_ratio), rng)
        x, y, w, h = box
        size = int(d.image_size)
        img = img.resize((size, size), Image.BILINEAR if rng.random() < 0.5 else Image.BICUBIC,
                         box=(x, y, x + w, y + h))
        out = transforms.random_erasing(transforms.normalize(np.asarray(img), d.mean, d.std),
                                        d.random_erasing, rng)
        maps = crop_token_labels(np.asarray(record["token_label"], np.float32), box, (H, W), flip, size // 16)
        return {"image": out, "label": np.int32(record["label"]),
                "token_topk_logits": maps[0], "token_topk_index": maps[1].astype(np.int32)}

    def mix(self, rng, batch):
        grid = int(self.config.data.image_size) // 16
        smoothing = self.config.mixup.label_smoothing
        box, lam = mixtoken_box(rng, grid)
        labels = smooth_one_hot(batch["label"], self.num_classes, smoothing)
        cls_targets = labels * lam + labels[::-1] * (1.0 - lam)
        return batch["image"], cls_targets, {"mix_box": box}

    def loss(self, outputs, targets, batch, step, rng):
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
