"""SADE's test-time self-supervised aggregation (optional stage; Vanint/SADE-AgnosticLT
test_training_imagenet.py).

  python -m longtail.sade_tta --config=configs/longtail/digits_lt.py:sade --checkpoint=SADE_DIR --out=DIR
  python -m common.evaluate --config=configs/longtail/digits_lt.py:sade --checkpoint=DIR

Three aggregation weights w = softmax(theta) (theta init 1/3, so w = 1/3 each) are learned on
the *unlabeled* test images: two strong views of each image go through the frozen model (eval
mode) and the loss is the negative mean cosine similarity of softmax(sum_e w_e z_e) between the
views. SGD lr 0.025, momentum 0.9 nesterov, wd 5e-4 on theta, batch 128, 5 epochs; stops early
once a weight falls under 0.05. DIR holds the model's variables with the learned weights in its
`aggregation` collection, which the multi-expert models use for their output.

Views (MoCo-v2 style, as SADE): RandomResizedCrop(scale 0.2-1), colour jitter 0.4 with p 0.8
(common.data.transforms.color_jitter: brightness/contrast/saturation, no hue), grayscale p 0.2,
Gaussian blur sigma in [0.1, 2] p 0.5, horizontal flip p 0.5.
"""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageFilter

from common import checkpoint, tasks
from common.data import pipeline, transforms
from longtail import stage_cli


class TwoViews:
    def __init__(self, d):
        self.size, self.mean, self.std = int(d.image_size), tuple(d.mean), tuple(d.std)

    def view(self, image, rng: np.random.Generator) -> np.ndarray:
        img = transforms.to_pil(image)
        x, y, w, h = transforms.rrc_box(img.size[0], img.size[1], (0.2, 1.0), (3 / 4, 4 / 3), rng)
        img = img.resize((self.size, self.size), Image.BILINEAR, box=(x, y, x + w, y + h))
        if rng.random() < 0.8:
            img = transforms.color_jitter(img, 0.4, rng)
        if rng.random() < 0.2:
            img = img.convert("L").convert("RGB")
        if rng.random() < 0.5:
            img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.1, 2.0))))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return transforms.normalize(np.asarray(img), self.mean, self.std)

    def __call__(self, record, rng):
        return {"view1": self.view(record["image"], rng), "view2": self.view(record["image"], rng)}


def consistency_loss(theta, z1, z2):
    """-mean_i cos(softmax(sum_e w_e z1_ie), softmax(sum_e w_e z2_ie)), w = softmax(theta)."""
    w = jax.nn.softmax(theta)
    p1 = jax.nn.softmax(jnp.einsum("bec,e->bc", z1, w))
    p2 = jax.nn.softmax(jnp.einsum("bec,e->bc", z2, w))
    cos = jnp.sum(p1 * p2, -1) / jnp.maximum(jnp.linalg.norm(p1, axis=-1) * jnp.linalg.norm(p2, axis=-1), 1e-8)
    return -jnp.mean(cos)


def fit_weights(expert_logit_pairs, num_experts: int = 3, lr: float = 0.025, min_weight: float = 0.05) -> np.ndarray:
    """Learns the aggregation weights from an iterable of (z1, z2) expert logits [B, E, C]."""
    theta = jnp.full((num_experts,), 1.0 / num_experts)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(lr, momentum=0.9, nesterov=True))
    state = tx.init(theta)

    @jax.jit
    def step(theta, state, z1, z2):
        grads = jax.grad(consistency_loss)(theta, z1, z2)
        updates, state = tx.update(grads, state, theta)
        return optax.apply_updates(theta, updates), state

    for z1, z2 in expert_logit_pairs:
        theta, state = step(theta, state, z1, z2)
        if float(jnp.min(jax.nn.softmax(theta))) < min_weight:
            break
    return np.asarray(jax.nn.softmax(theta))


def fit(config, model_checkpoint: str, out_dir: str, split: str | None = None, epochs: float = 5.0,
        batch_size: int = 128) -> str:
    """Writes the variables of `model_checkpoint` with learned aggregation weights to `out_dir`."""
    task = tasks.get_task(config.task)(config)
    variables = dict(checkpoint.load_any(model_checkpoint))
    src = task.source(split or config.data.eval_split)
    batch_size = min(batch_size, len(src))
    stream = iter(pipeline.train_dataset(src, TwoViews(config.data), batch_size, config.seed, 0, 1,
                                         config.data.num_threads, config.data.prefetch))
    experts = jax.jit(lambda v, x: task.model.apply(v, x, train=False)["expert_logits"].astype(jnp.float32))
    steps = max(1, int(epochs * len(src) / batch_size))
    pairs = ((experts(variables, jnp.asarray(b["view1"])), experts(variables, jnp.asarray(b["view2"])))
             for b in (next(stream) for _ in range(steps)))
    num_experts = int(np.shape(variables["aggregation"]["weights"])[0])
    weights = fit_weights(pairs, num_experts)
    logging.info("SADE test-time aggregation weights: %s", weights)
    return checkpoint.save_variables(out_dir, {**variables, "aggregation": {"weights": weights}})


def main():
    stage_cli.fit_and_evaluate_main(fit, "Config file of the multi-expert model.",
                                    "Trained SADE checkpoint (workdir or variables directory).",
                                    "Directory for the variables with the learned weights.", logging.INFO)


if __name__ == "__main__":
    main()
