"""`longtail`: the classification task with the survey's components chosen by config
(`config.longtail`): a sampler, a class-sensitive loss (with DRW), mixup / Remix, a
classifier head (linear, cosine, LWS, NCM), post-hoc logit adjustment and
tau-normalisation at inference, decoupled stage-2 training of the classifier only
(cRT, LWS, MiSLAS stage 2: `heads.classifier_only_groups` as the config's
`optim.groups`), BBN's two data streams with cumulative
learning, the multi-expert losses of RIDE and SADE, LADE and IB, and the survey's metrics (top-1,
many/medium/few, relative accuracy).

Stage 2 starts from a stage-1 checkpoint with the platform's `init_from`; LWS and MiSLAS
configs set `init_keep_missing`, so the LWS scales the stage-1 checkpoint lacks keep their
fresh init. During stage 2 the frozen
backbone stays in train mode by default, so its BatchNorm statistics are re-estimated on
the stage-2 (class-balanced) batches: MiSLAS's "shifted BN"; `freeze_bn` keeps them.
"""
import functools
import logging
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import models
from common.classification import ClassificationTask, compute_dtype
from common.data import pipeline
from common.tasks import register_task
from longtail import heads, losses, metrics, samplers

log = logging.getLogger(__name__)


@register_task("longtail")
class LongTailTask(ClassificationTask):
    def __init__(self, config):
        self.lt = config.longtail
        if self.lt.remix_kappa > 0 and (self.lt.loss != "ce" or self.lt.mixup_alpha <= 0):
            raise ValueError("Remix (longtail.remix_kappa > 0) is defined with plain CE and mixup: set "
                             "longtail.loss='ce' and longtail.mixup_alpha > 0")
        super().__init__(config)

    # ------------------------------------------------------------------ model
    def build_model(self):
        c, lt = self.config.model, self.lt
        head = heads.make_head(lt.head, lt.cosine_scale, lt.ncm_distance)
        kwargs = c.kwargs.to_dict() | ({"head": head} if head is not None else {})
        return models.create_model(c.name, num_classes=c.num_classes, dtype=compute_dtype(c.dtype), **kwargs)

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

    def input_pipeline(self, split, process_index, process_count, *, train):
        """BBN's two streams: with `paired_sampler` every training record is a pair (one
        index from `sampler`, one from `paired_sampler`), see samplers.PairedSource."""
        if not (train and self.lt.paired_sampler):
            return super().input_pipeline(split, process_index, process_count, train=train)
        d, lt = self.config.data, self.lt
        labels, total = self.train_labels, int(np.ceil(self.config.num_epochs))
        order = lambda epoch: samplers.paired_order(  # noqa: E731
            lt.sampler, lt.paired_sampler, labels, self.num_classes, epoch, self.config.seed, total)
        return pipeline.train_dataset(samplers.PairedSource(self.source(split)), self.train_element,
                                      self.micro_batch_size, self.config.seed, process_index, process_count,
                                      d.num_threads, d.prefetch, order)

    def train_element(self, record, rng):
        out = super().train_element(record, rng)
        if "image_rb" in record:
            rb = super().train_element({"image": record["image_rb"], "label": record["label_rb"]}, rng)
            out.update(image_rb=rb["image"], label_rb=rb["label"])
        return out

    # ------------------------------------------------------------------ training
    def mix(self, rng, batch):
        """mixup / Remix with the batch-reversed sample; targets = (y_a, y_b, lam_a) per sample."""
        images, labels = batch["image"], batch["label"]
        if "image_rb" in batch:     # BBN: targets (y_c, y_r), the re-balancing images go to the model
            return images, (labels, batch["label_rb"]), {"rebalancing_images": batch["image_rb"]}
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

    def epoch(self, step):
        """0-indexed (fractional) epoch of loop step `step`."""
        return step / (self.steps_per_epoch() * self.accum)

    def drw_active(self, step):
        start = int(self.lt.drw_epoch * self.steps_per_epoch()) * self.accum
        return jnp.asarray(self.lt.drw_epoch >= 0) & (step >= start)

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
            w = jnp.where(self.drw_active(step), w, jnp.ones_like(w))
        return w

    def bbn_alpha(self, step):
        return losses.bbn_alpha(jnp.floor(self.epoch(step)), self.lt.bbn_div_epochs or self.config.num_epochs)

    def objective(self, outputs, labels, step, rng):
        """The configured loss of the model outputs for integer labels."""
        lt, counts = self.lt, self.train_counts
        if lt.loss == "ride":
            base_t = jnp.asarray(losses.ride_temperatures(counts, lt.ride_reweight_factor), jnp.float32)
            temperature = lt.ride_temperature * jnp.where(self.drw_active(step), base_t, jnp.ones_like(base_t))
            return losses.ride(outputs["expert_logits"], labels, counts, lt.ldam_s, lt.ldam_max_m,
                               self.class_weights(step), lt.ride_diversity, temperature)
        if lt.loss == "sade":
            return losses.sade(outputs["expert_logits"], labels, counts, lt.sade_tau)
        if lt.loss == "ib":     # plain CE until ib_start_epoch, then influence-balanced
            logits = self.logits(outputs).astype(jnp.float32)
            return jnp.where(self.epoch(step) >= lt.ib_start_epoch,
                             losses.influence_balanced(logits, labels, outputs["features"], counts, lt.ib_alpha),
                             losses.weighted_ce(logits, labels))
        return self.per_label_loss(self.logits(outputs).astype(jnp.float32), labels, step, rng)

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
        if lt.loss == "label_aware_smoothing":
            return losses.label_aware_smoothing(logits, labels, counts, lt.las_head, lt.las_tail)
        if lt.loss == "lade":
            return (losses.logit_adjusted_ce(logits, labels, counts, 1.0)
                    + lt.lade_weight * losses.lade(logits, labels, counts, lt.lade_remine_lambda))
        raise ValueError(f"unknown longtail.loss {lt.loss!r}")

    def loss(self, outputs, targets, batch, step, rng):
        if isinstance(outputs, Mapping) and "conventional" in outputs:
            # BBN: z = W [2 alpha f_c ; 2 (1 - alpha) f_r] + b, loss alpha CE(z, y_c) + (1 - alpha) CE(z, y_r)
            y_c, y_r = targets
            alpha = self.bbn_alpha(step)
            z = alpha * outputs["conventional"] + (1.0 - alpha) * outputs["rebalancing"]
            return (alpha * self.per_label_loss(z, y_c, step, rng)
                    + (1.0 - alpha) * self.per_label_loss(z, y_r, step, rng)), {"train/bbn_alpha": alpha}
        y_a, y_b, lam = targets
        if self.lt.mixup_alpha <= 0:
            return self.objective(outputs, y_a, step, rng), {}
        if self.lt.remix_kappa > 0:
            # Remix moves the label of each pair on its own: lam_y differs per sample
            return losses.pair_ce(self.logits(outputs).astype(jnp.float32), y_a, y_b, lam), {}
        # mixup: lam (one per batch) * L(y_a) + (1 - lam) * L(y_b), for any configured loss
        lam_mean = jnp.mean(lam)
        return (lam_mean * self.objective(outputs, y_a, step, rng)
                + (1.0 - lam_mean) * self.objective(outputs, y_b, step, rng)), {}

    def apply_model(self, params, model_state, images, *, train, rngs=None, **kwargs):
        if train and self.lt.loss == "ib":  # the IB loss reads the pooled features beside the logits
            taps, model_state = self._apply(params, model_state, images, train, rngs,
                                            features=("pooled", "head"), **kwargs)
            return {"logits": taps["head"], "features": taps["pooled"]}, model_state
        return self._apply(params, model_state, images, train, rngs, **kwargs)

    def _apply(self, params, model_state, images, train, rngs, **kwargs):
        if train and self.lt.freeze_bn:     # stage 2 without shifted BN: BN in eval mode, stats kept
            out, _ = super().apply_model(params, model_state, images, train=False, rngs=rngs, **kwargs)
            return out, model_state
        return super().apply_model(params, model_state, images, train=train, rngs=rngs, **kwargs)

    # ------------------------------------------------------------------ evaluation
    def eval_params(self, net):
        params = super().eval_params(net)
        tau = float(self.lt.tau_norm)
        if tau <= 0:
            return params
        name = heads.classifier_name(params)
        return {**params, name: heads.tau_normalise(dict(params[name]), tau)}

    def adjusted(self, logits):
        """The logits as evaluated: post-hoc logit adjustment when the config asks for it."""
        if self.lt.posthoc_tau > 0:
            return losses.posthoc_adjust(logits, self.train_counts, self.lt.posthoc_tau)
        return logits

    def predict_probs(self, state, batch):
        logits = self.logits(self.predict_step(state, batch)).astype(jnp.float32)
        return jax.nn.softmax(self.adjusted(logits), axis=-1)

    def class_groups(self):
        """'many' / 'medium' / 'few' per class, from its training count (the survey's groups);
        None when the training split is not at hand."""
        try:
            counts = self.train_counts
        except (FileNotFoundError, ImportError) as e:    # not prepared, or preparing needs TensorFlow
            log.warning("no many/medium/few groups: %s", e)
            return None
        groups = metrics.shot_groups(counts, self.lt.many_threshold, self.lt.few_threshold)
        return [next(name for name, mask in groups.items() if mask[c]) for c in range(self.num_classes)]

    def eval_metrics(self, logits, batch):
        logits = self.adjusted(logits)
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
