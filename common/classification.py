"""The `classification` task: one network trained with softmax cross-entropy on images
(or clips), evaluated by top-1 / top-5.

Papers that train differently subclass `ClassificationTask` and override only the hook
that differs: `train_element`/`eval_element` (data), `mix` (Mixup/CutMix or token
mixing), `loss` (objective), `logits` (reading the model output), `eval_params` (the
weights evaluated), `eval_metrics` / `finalize_eval` (per-batch sums and the paper's
metric from their totals). `common.predict` runs a checkpoint on files through
`input_suffixes`, `predict_element`, `predict_probs` and `class_groups`.
"""
import functools
from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageOps

from common import models, optim
from common.data import mixup, pipeline, sources, transforms
from common.evaluators import SumEvaluator
from common.tasks import Task, register_task
from common.train_state import Network, TrainState

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(name: str):
    if name not in DTYPES:
        raise ValueError(f"model.dtype {name!r} is not one of {sorted(DTYPES)}")
    return DTYPES[name]


class PredictElement(NamedTuple):
    """One input file made ready for `predict_probs`: the model input as the eval pipeline
    makes it, the (caption, uint8 image) panels of its picture, and facts for its JSON."""
    input: np.ndarray
    panels: list
    info: dict


@register_task("classification")
class ClassificationTask(Task):
    def __init__(self, config):
        super().__init__(config)
        self.num_classes = int(config.model.num_classes)
        self.model = self.build_model()
        self.accum = max(1, int(config.optim.grad_accum_steps))
        if config.batch_size % self.accum:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by "
                             f"optim.grad_accum_steps {self.accum}")
        self.micro_batch_size = config.batch_size // self.accum
        self._num_train = None

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        c = self.config.model
        return models.create_model(c.name, num_classes=c.num_classes, dtype=compute_dtype(c.dtype),
                                   **c.kwargs.to_dict())

    def dummy_input(self, batch: int = 1) -> jnp.ndarray:
        s = int(self.config.data.image_size)
        return jnp.zeros((batch, s, s, 3), jnp.float32)

    def init_variables(self, rng):
        k_params, k_drop = jax.random.split(rng)
        return self.model.init({"params": k_params, "dropout": k_drop, "drop_path": k_drop},
                               self.dummy_input(), train=False)

    # ------------------------------------------------------------------ data
    def source(self, split: str):
        d = self.config.data
        return sources.data_source(d.name, split, d.data_dir, d.builder)

    def num_train_examples(self) -> int:
        if self._num_train is None:
            n = int(self.config.data.num_train_examples)
            self._num_train = n if n > 0 else len(self.source(self.config.data.train_split))
        return self._num_train

    def steps_per_epoch(self) -> float:
        """Optimizer updates per epoch (one update = config.batch_size examples)."""
        return self.num_train_examples() / self.config.batch_size

    def total_steps(self) -> int:
        """Loop steps (micro-batches) of the whole run."""
        return optim.total_train_steps(self.config, self.steps_per_epoch()) * self.accum

    def examples_per_step(self) -> int:
        return self.micro_batch_size

    def synthetic_batch(self, batch_size: int) -> dict:
        x = np.asarray(self.dummy_input(batch_size))
        rng = np.random.default_rng(0)
        return {"image": rng.standard_normal(x.shape).astype(np.float32),
                "label": rng.integers(0, self.num_classes, batch_size).astype(np.int32)}

    def train_element(self, record: Mapping, rng: np.random.Generator) -> dict:
        if not hasattr(self, "_train_tf"):
            self._train_tf = transforms.TrainTransform(self.config.data)
        return {"image": self._train_tf(record["image"], rng), "label": np.int32(record["label"])}

    def eval_element(self, record: Mapping) -> dict:
        if not hasattr(self, "_eval_tf"):
            self._eval_tf = transforms.EvalTransform(self.config.data)
        return {"image": self._eval_tf(record["image"]), "label": np.int32(record["label"])}

    def input_pipeline(self, split: str, process_index: int, process_count: int, *, train: bool):
        d = self.config.data
        src = self.source(split)
        if train:
            return pipeline.train_dataset(src, self.train_element, self.micro_batch_size,
                                          self.config.seed, process_index, process_count,
                                          d.num_threads, d.prefetch, self.sample_order(src))
        return pipeline.eval_dataset(src, self.eval_element, self.config.eval_batch_size,
                                     process_index, process_count, d.num_threads, d.prefetch)

    def sample_order(self, source):
        """None: uniform reshuffling each epoch. Tasks with re-balancing samplers return a
        function epoch -> array of source indices."""
        return None

    # ------------------------------------------------------------------ state
    @functools.cached_property
    def params_like(self):
        """The params' structure in creation order, traced only when a layer-wise lr decay
        rule needs it (it numbers the blocks by it)."""
        if not optim.ParamGroups.needs_structure(self.config.optim.groups):
            return None
        return nn.meta.unbox(jax.eval_shape(self.init_variables, jax.random.PRNGKey(0))["params"])

    def optimizer(self):
        return optim.make_optimizer(self.config, self.steps_per_epoch(), self.params_like)

    def param_groups(self):
        return {"model": optim.ParamGroups(self.config.optim.groups, self.params_like)}

    def init(self, rng) -> TrainState:
        variables = self.init_variables(rng)
        params = variables["params"]
        model_state = {k: v for k, v in variables.items() if k != "params"}
        tx, _ = self.tx_and_schedule
        return TrainState.create(model=Network.create(params, tx, model_state,
                                                      ema=self.config.optim.ema_decay > 0))

    @functools.cached_property
    def tx_and_schedule(self):
        return self.optimizer()

    def learning_rate(self, step) -> float:
        return float(self.tx_and_schedule[1](step))

    # ------------------------------------------------------------------ steps
    def logits(self, outputs) -> jnp.ndarray:
        return outputs["logits"] if isinstance(outputs, Mapping) else outputs

    def mix(self, rng, batch) -> tuple[jnp.ndarray, jnp.ndarray, dict]:
        """Mixed images, soft targets, and extra inputs for the model call."""
        m = self.config.mixup
        images, targets = mixup.mixup_cutmix(
            rng, batch["image"], batch["label"], self.num_classes, m.mixup_alpha, m.cutmix_alpha,
            m.prob, m.switch_prob, m.label_smoothing)
        return images, targets, {}

    def loss(self, outputs, targets, batch, step, rng) -> tuple[jnp.ndarray, dict]:
        """(scalar loss, extra metrics); `step` is the loop step, `rng` a key of this step."""
        logits = self.logits(outputs).astype(jnp.float32)
        return jnp.mean(optax.softmax_cross_entropy(logits, targets)), {}

    def apply_model(self, params, model_state, images, *, train: bool, rngs=None, **kwargs):
        variables = {"params": params, **model_state}
        mutable = list(model_state) if (train and model_state) else False
        dtype = compute_dtype(self.config.model.dtype)
        out = self.model.apply(variables, images.astype(dtype), train=train, rngs=rngs,
                               mutable=mutable, **kwargs)
        return out if mutable else (out, model_state)

    def train_step(self, state: TrainState, batch, rng):
        k_mix, k_drop, k_path = jax.random.split(rng, 3)
        k_loss = jax.random.fold_in(rng, 3)
        images, targets, extra = self.mix(k_mix, batch)
        net = state.model

        def loss_fn(params):
            outputs, new_model_state = self.apply_model(
                params, net.model_state, images, train=True,
                rngs={"dropout": k_drop, "drop_path": k_path}, **extra)
            loss, aux = self.loss(outputs, targets, batch, state.step, k_loss)
            return loss, (aux, new_model_state)

        (loss, (aux, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        tx, schedule = self.tx_and_schedule
        net = net.apply_gradients(grads, tx, self.config.optim.ema_decay, new_model_state)
        metrics = {"train/loss": loss, "lr": schedule(state.step),
                   "train/grad_norm": optax.global_norm(grads), **aux}
        return state.update(model=net), metrics

    def eval_params(self, net: Network):
        return net.eval_params()

    def predict_step(self, state: TrainState, batch):
        net = state.model
        return self.apply_model(self.eval_params(net), net.model_state, batch["image"], train=False)[0]

    # ------------------------------------------------------------------ prediction on files
    input_suffixes = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

    def predict_element(self, path: str) -> PredictElement:
        """An image file (EXIF orientation applied) through the eval transform."""
        with Image.open(path) as f:
            image = np.asarray(ImageOps.exif_transpose(f).convert("RGB"))
        return PredictElement(self.eval_element({"image": image, "label": 0})["image"], [("", image)],
                              {"height": image.shape[0], "width": image.shape[1]})

    def predict_probs(self, state: TrainState, batch) -> jnp.ndarray:
        """[B, K] class probabilities of batch["image"], from the logits the eval step scores."""
        return jax.nn.softmax(self.logits(self.predict_step(state, batch)).astype(jnp.float32), axis=-1)

    def class_groups(self) -> list[str] | None:
        """A group name for every class, shown beside its predictions, or None."""
        return None

    def eval_step(self, state: TrainState, batch) -> dict:
        return self.eval_metrics(self.logits(self.predict_step(state, batch)).astype(jnp.float32), batch)

    def make_evaluator(self, eval_pass):
        return SumEvaluator(self.finalize_eval)

    def eval_metrics(self, logits, batch) -> dict:
        labels, mask = batch["label"], batch.get("mask", jnp.ones(labels_shape(batch), jnp.float32))
        k = min(5, logits.shape[-1])
        topk = jax.lax.top_k(logits, k)[1]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return {"correct": jnp.sum((topk[:, 0] == labels) * mask),
                "correct5": jnp.sum(jnp.any(topk == labels[:, None], axis=-1) * mask),
                "loss": jnp.sum(loss * mask), "count": jnp.sum(mask)}

    def finalize_eval(self, sums: Mapping[str, Any]) -> dict:
        n = max(float(sums["count"]), 1.0)
        return {"top1": 100.0 * float(sums["correct"]) / n, "top5": 100.0 * float(sums["correct5"]) / n,
                "loss": float(sums["loss"]) / n, "count": int(sums["count"])}


def labels_shape(batch):
    return batch["label"].shape[:1]
