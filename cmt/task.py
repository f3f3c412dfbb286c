"""`music`: CMT's training on the platform's loop (wzk1015/video-bgm-generation src/train.py).

- data: whole compound-word songs (cmt/data.py) cut to config.data.seq_len, the constant
  prefix of 7 init rows, train.py's x / y / loss mask;
- step: the seven heads' cross-entropies, each masked and averaged over the mask
  (model.compute_loss), total = their mean; the stage-2 heads see the teacher-forced target
  type; Adam 1e-4, global-norm clipping 3.0 (config);
- evaluation: the same masked losses on the validation split, summed over songs, plus each
  attribute's next-token accuracy. The paper's control and quality metrics need generated
  music: `python -m cmt.generate` prints them (cmt/metrics.py).

DataParallel in the official code sums the per-GPU mean losses (spec §5, pitfall 4): here the
loss is the mean over the global batch (the per-GPU-count scaling of the clipped gradient is
not reproduced).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cmt.encoding import DEFAULT_PREFIX, VOCAB
from cmt.model import EMB_NAMES, N_PREFIX
from common import models
from common.evaluators import SumEvaluator
from common.tasks import SingleNetworkTask, register_task
from common.train_state import TrainState

FIELDS = EMB_NAMES                       # the 7 predicted attributes, model column order


def masked_ce(logits, target, mask):
    """model.compute_loss: sum(CE * mask) / sum(mask)."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), target)
    return (ce * mask).sum() / jnp.maximum(mask.sum(), 1e-9)


@register_task("music")
class MusicTask(SingleNetworkTask):
    def __init__(self, config):
        super().__init__(config)
        c = config.model
        self.model = models.create_model(c.name, **c.kwargs.to_dict())

    # ------------------------------------------------------------------ data
    def data_module(self):
        from cmt import data
        return data

    def steps_per_epoch(self) -> float:
        return max(1, self.num_train_examples // self.config.batch_size)   # train.py drops the remainder

    def synthetic_batch(self, batch_size: int) -> dict:
        length = int(self.config.data.seq_len)
        rng = np.random.default_rng(0)
        rows = np.stack([rng.integers(0, v, (batch_size, length + 1)) for v in VOCAB[:8]], -1)
        ticks = np.sort(rng.integers(0, 5000, (batch_size, length + 1)), 1)[..., None]
        rows = np.concatenate([rows, ticks], -1).astype(np.int32)
        return {"x": rows[:, :-1], "y": rows[:, 1:], "loss_mask": np.ones((batch_size, length), np.float32),
                "prefix": np.broadcast_to(DEFAULT_PREFIX, (batch_size, N_PREFIX, 3)).copy()}

    # ------------------------------------------------------------------ state
    def init_variables(self, rng):
        x = jnp.zeros((1, 4, 9), jnp.int32)
        return self.model.init({"params": rng, "dropout": rng}, jnp.zeros((1, N_PREFIX, 3), jnp.int32), x,
                               jnp.zeros((1, 4), jnp.int32))


    def logits(self, net, batch, *, train: bool, rng=None):
        return self.model.apply({"params": net.params, **net.model_state}, batch["prefix"], batch["x"],
                                batch["y"][..., 1], train=train, rngs={"dropout": rng} if rng is not None else None)

    def losses(self, out, batch, mask):
        return {name: masked_ce(out[name], batch["y"][..., i], mask) for i, name in enumerate(FIELDS)}

    # ------------------------------------------------------------------ steps
    def train_step(self, state: TrainState, batch, rng):
        net = state.model

        def loss_fn(params):
            out = self.logits(net.replace(params=params), batch, train=True, rng=rng)
            losses = self.losses(out, batch, batch["loss_mask"])
            return sum(losses.values()) / len(losses), losses

        (loss, losses), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        tx, schedule = self.tx_and_schedule
        net = net.apply_gradients(grads, tx)
        metrics = {f"train/loss_{k}": v for k, v in losses.items()}
        return state.update(model=net), {**metrics, "train/loss": loss, "lr": schedule(state.step),
                                         "train/grad_norm": optax.global_norm(grads)}

    def predict_step(self, state: TrainState, batch):
        return self.logits(state.model, batch, train=False)

    def eval_step(self, state: TrainState, batch):
        out = self.predict_step(state, batch)
        mask = batch["loss_mask"] * batch["mask"][:, None]
        sums = {"tokens": mask.sum(), "songs": batch["mask"].sum()}
        for i, name in enumerate(FIELDS):
            target = batch["y"][..., i]
            ce = optax.softmax_cross_entropy_with_integer_labels(out[name].astype(jnp.float32), target)
            # per-song masked means (the official per-song loss), summed over songs
            per_song = (ce * mask).sum(1) / jnp.maximum(batch["loss_mask"].sum(1), 1e-9)
            sums[f"loss_{name}"] = per_song.sum()
            sums[f"correct_{name}"] = ((out[name].argmax(-1) == target) * mask).sum()
        return sums

    # ------------------------------------------------------------------ evaluation
    def make_evaluator(self, eval_pass):
        def finalize(s):
            songs, tokens = max(float(s["songs"]), 1.0), max(float(s["tokens"]), 1.0)
            m = {f"loss_{k}": float(s[f"loss_{k}"]) / songs for k in FIELDS}
            m["loss"] = sum(m.values()) / len(FIELDS)
            m.update({f"acc_{k}": 100.0 * float(s[f"correct_{k}"]) / tokens for k in FIELDS})
            m["songs"] = int(s["songs"])
            return m
        return SumEvaluator(finalize)

    def summarize(self, results):
        lines = [f"{'pass':10s} {'loss':>7s}  " + "  ".join(f"{k[:8]:>8s}" for k in FIELDS) + "   (next-token acc %)"]
        for name, m in results.items():
            lines.append(f"{name:10s} {m['loss']:7.4f}  " + "  ".join(f"{m[f'acc_{k}']:8.2f}" for k in FIELDS))
        return "\n".join(lines)
