"""`longtail`: the classification task with the survey's components chosen by config
(`config.longtail`): a sampler, a class-sensitive loss (with DRW), mixup / Remix,
post-hoc logit adjustment and tau-normalisation at inference, decoupled stage-2
training of the classifier only (cRT: `train_only_head` + `init_from` a stage-1
checkpoint + `init_reset_head`), and the survey's metrics (top-1, many/medium/few,
relative accuracy).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import optim
from common.classification import ClassificationTask
from common.tasks import register_task
from longtail import losses, metrics, samplers

HEAD_NAMES = ("linear", "fc", "head")


@register_task("longtail")
class LongTailTask(ClassificationTask):
    def __init__(self, config):
        super().__init__(config)
        self.lt = config.longtail

    # ------------------------------------------------------------------ data
    @functools.cached_property
    def train_labels(self) -> np.ndarray:
        src = self.source(self.config.data.train_split)
        return np.asarray([int(src[i]["label"]) for i in range(len(src))])

    @functools.cached_property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.train_labels, minlength=self.num_classes)

    def sample_order(self, source):
        if self.lt.sampler == "instance":
            return None
        labels, kind = self.train_labels, self.lt.sampler
        total = int(np.ceil(self.config.num_epochs))
        return lambda epoch: samplers.epoch_order(kind, labels, self.num_classes, epoch, self.config.seed, total)

    # ------------------------------------------------------------------ training
    def mix(self, rng, batch):
        """mixup / Remix with the batch-reversed sample; targets = (y_a, y_b, lam_a) per sample."""
        images, labels = batch["image"], batch["label"]
        alpha = float(self.lt.mixup_alpha)
        if alpha <= 0:
            return images, (labels, labels, jnp.ones(labels.shape, jnp.float32)), {}
        lam = jax.random.beta(rng, alpha, alpha)
        mixed = images * lam + images[::-1] * (1.0 - lam)
        lam_y = jnp.full(labels.shape, lam, jnp.float32)
        if self.lt.remix_kappa > 0:   # Remix: the minority side keeps the label
            n = jnp.asarray(self.train_counts, jnp.float32)
            ratio = n[labels] / n[labels[::-1]]
            k, t = self.lt.remix_kappa, self.lt.remix_tau
            lam_y = jnp.where((ratio >= k) & (lam < t), 0.0, jnp.where((ratio <= 1.0 / k) & (1.0 - lam < t), 1.0, lam_y))
        return mixed, (labels, labels[::-1], lam_y), {}

    def class_weights(self, step):
        """Loss class weights, with deferred re-weighting (DRW) switching them on late."""
        counts = self.train_counts
        kind = self.lt.loss
        if kind == "weighted_ce":
            w = losses.survey_softmax_weights(counts)
        elif kind == "class_balanced" or self.lt.drw_epoch >= 0:
            w = losses.class_balanced_weights(counts, self.lt.cb_beta)
        else:
            return None
        w = jnp.asarray(w, jnp.float32)
        if self.lt.drw_epoch >= 0:
            drw_step = int(self.lt.drw_epoch * self.steps_per_epoch()) * self.accum
            w = jnp.where(step >= drw_step, w, jnp.ones_like(w))
        return w

    def per_label_loss(self, logits, labels, step, rng):
        lt, counts = self.lt, self.train_counts
        weights = self.class_weights(step)
        if lt.loss in ("ce", "weighted_ce", "class_balanced"):
            return losses.weighted_ce(logits, labels, weights)
        if lt.loss == "focal":
            return losses.focal(logits, labels, lt.focal_gamma)
        if lt.loss == "balanced_softmax":
            return losses.logit_adjusted_ce(logits, labels, counts, 1.0)
        if lt.loss == "logit_adjusted":
            return losses.logit_adjusted_ce(logits, labels, counts, lt.tau)
        if lt.loss == "ldam":
            return losses.ldam(logits, labels, counts, lt.ldam_s, lt.ldam_max_m, weights)
        if lt.loss == "esql":
            return losses.equalization_softmax(rng, logits, labels, counts, lt.esql_lambda, lt.esql_gamma)
        raise ValueError(f"unknown longtail.loss {lt.loss!r}")

    def loss(self, outputs, targets, batch):
        y_a, y_b, lam = targets
        logits = self.logits(outputs).astype(jnp.float32)
        step, rng = batch["step"], jax.random.fold_in(jax.random.PRNGKey(self.config.seed), batch["step"])
        if self.lt.mixup_alpha <= 0:
            return self.per_label_loss(logits, y_a, step, rng), {}
        # mixup: lam * L(y_a) + (1 - lam) * L(y_b) per sample (the batch-mean form of the papers)
        lam_mean = jnp.mean(lam)
        return (lam_mean * self.per_label_loss(logits, y_a, step, rng)
                + (1.0 - lam_mean) * self.per_label_loss(logits, y_b, step, rng)), {}

    def optimizer(self, params_like=None):
        tx, schedule = super().optimizer(params_like)
        if not self.lt.train_only_head:
            return tx, schedule
        # decoupled stage 2 (cRT / LWS): the backbone gets no update, only the classifier
        label = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
            lambda p, _: "head" if any(optim.path_str(p).startswith(h + "/") for h in HEAD_NAMES) else "frozen",
            params)
        return optax.multi_transform({"head": tx, "frozen": optax.set_to_zero()}, label), schedule

    # ------------------------------------------------------------------ evaluation
    def eval_params(self, state):
        params = super().eval_params(state)
        tau = float(self.lt.tau_norm)
        if tau <= 0:
            return params
        name = next(h for h in HEAD_NAMES if h in params)
        head = dict(params[name])
        norm = jnp.linalg.norm(head["kernel"], axis=0, keepdims=True)       # per class (kernel: in, C)
        head["kernel"] = head["kernel"] / jnp.power(norm, tau)
        head["bias"] = jnp.zeros_like(head["bias"])                          # tau-norm drops the bias
        return {**params, name: head}

    def eval_metrics(self, logits, batch):
        if self.lt.posthoc_tau > 0:
            logits = losses.posthoc_adjust(logits, self.train_counts, self.lt.posthoc_tau)
        labels = batch["label"]
        mask = batch.get("mask", jnp.ones(labels.shape, jnp.float32))
        hit = (jnp.argmax(logits, -1) == labels).astype(jnp.float32) * mask
        onehot = jax.nn.one_hot(labels, self.num_classes) * mask[:, None]
        return {"correct": hit @ jax.nn.one_hot(labels, self.num_classes), "count": onehot.sum(0),
                "loss": jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels) * mask)}

    def finalize_eval(self, sums):
        report = metrics.longtail_report(sums["correct"], sums["count"], self.train_counts,
                                         self.lt.many_threshold, self.lt.few_threshold,
                                         self.lt.upper_accuracy or None)
        report["loss"] = float(sums["loss"]) / max(float(np.sum(sums["count"])), 1.0)
        return report
