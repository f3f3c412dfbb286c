"""Two tasks that exist only in the test suite, to show that the platform runs a task it
does not know: `regression` (one network, scored by a non-additive evaluator, the median
absolute error) and `toy_gan` (a generator and a discriminator with their own Adam
optimizers and an EMA of the generator, updated in one train_step).

Configs name them as any paper would: `config.task = "tests.common.toy_tasks:regression"`.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from common import optim
from common.config import base_config
from common.data import pipeline
from common.evaluators import ConcatEvaluator
from common.layers.basic import dense
from common.tasks import Task, register_task
from common.train_state import Network, TrainState

WEIGHTS = np.asarray([1.5, -2.0, 0.5, 1.0], np.float32)
REAL_MEAN = np.asarray([2.0, -1.0], np.float32)


def _examples(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = x @ WEIGHTS + 0.1 * rng.standard_normal(n).astype(np.float32)
    return [{"x": x[i], "y": np.float32(y[i])} for i in range(n)]


def _config(task: str) -> ml_collections.ConfigDict:
    c = base_config()
    c.task = f"tests.common.toy_tasks:{task}"
    c.batch_size, c.eval_batch_size = 16, 32
    c.num_train_steps = 8
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 8, 2
    c.keep_checkpoints = 10
    c.optim.lr, c.optim.weight_decay = 0.05, 0.0
    c.schedule.name, c.schedule.warmup_epochs = "constant", 0.0
    c.data.num_threads = 1
    return c


def regression_config() -> ml_collections.ConfigDict:
    c = _config("regression")
    c.optim.lr = 0.3
    c.lock()
    return c


def gan_config() -> ml_collections.ConfigDict:
    c = _config("toy_gan")
    c.discriminator_optim = c.optim.copy_and_resolve_references()
    c.discriminator_optim.lr = 0.02
    c.optim.ema_decay = 0.9
    c.lock()
    return c


class _Toy(Task):
    """The parts both toys share: an in-memory source through the real grain pipelines."""
    num_train, num_eval = 256, 80

    def source(self, split: str):
        return _examples(self.num_train if split == "train" else self.num_eval, 0 if split == "train" else 1)

    def input_pipeline(self, split, process_index, process_count, *, train):
        src = self.source(split)
        if train:
            return pipeline.train_dataset(src, lambda r, rng: r, self.config.batch_size, self.config.seed,
                                          process_index, process_count, num_threads=1)
        return pipeline.eval_dataset(src, lambda r: r, self.config.eval_batch_size, process_index,
                                     process_count, num_threads=1)

    def synthetic_batch(self, batch_size):
        return {k: np.stack([e[k] for e in _examples(batch_size, 2)]) for k in ("x", "y")}

    def optimizer(self, optim_config=None):
        return optim.make_optimizer(self.config, self.num_train / self.config.batch_size, optim=optim_config)


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x):
        return dense(1, ("embed", "mlp"), name="fc")(x)[..., 0]


@register_task("regression")
class RegressionTask(_Toy):
    model = Linear()

    def init(self, rng):
        params = self.model.init(rng, jnp.zeros((1, 4)))["params"]
        return TrainState.create(model=Network.create(params, self.optimizer()[0]))

    def train_step(self, state, batch, rng):
        net = state.model

        def loss_fn(params):
            return jnp.mean((self.model.apply({"params": params}, batch["x"]) - batch["y"]) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(net.params)
        tx, lr = self.optimizer()
        return state.update(model=net.apply_gradients(grads, tx)), {"train/loss": loss, "lr": lr(state.step)}

    def predict_step(self, state, batch):
        return self.model.apply({"params": state.model.params}, batch["x"])

    def eval_step(self, state, batch):
        return {"abs_error": jnp.abs(self.predict_step(state, batch) - batch["y"]), "mask": batch["mask"]}

    def make_evaluator(self, eval_pass):
        return ConcatEvaluator(lambda out: {"median_abs_error": float(np.median(out["abs_error"])),
                                            "count": int(out["abs_error"].shape[0])})


class Generator(nn.Module):
    @nn.compact
    def __call__(self, z):
        h = nn.relu(dense(16, ("embed", "mlp"), name="fc1")(z))
        return dense(2, ("mlp", "embed"), name="fc2")(h)


class Discriminator(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.leaky_relu(dense(16, ("embed", "mlp"), name="fc1")(x), 0.2)
        return dense(1, ("mlp", "embed"), name="fc2")(h)[..., 0]


@register_task("toy_gan")
class ToyGanTask(_Toy):
    """Non-saturating GAN on 2-d points: the discriminator step, then the generator step
    against the updated discriminator, in one train_step; the generator keeps an EMA."""
    generator, discriminator = Generator(), Discriminator()

    @functools.cached_property
    def txs(self):
        return {"generator": self.optimizer()[0], "discriminator": self.optimizer(self.config.discriminator_optim)[0]}

    def init(self, rng):
        kg, kd = jax.random.split(rng)
        g = self.generator.init(kg, jnp.zeros((1, 4)))["params"]
        d = self.discriminator.init(kd, jnp.zeros((1, 2)))["params"]
        return TrainState.create(generator=Network.create(g, self.txs["generator"], ema=True),
                                 discriminator=Network.create(d, self.txs["discriminator"]))

    def real(self, batch):
        return batch["x"][:, :2] * 0.5 + jnp.asarray(REAL_MEAN)

    def train_step(self, state, batch, rng):
        g, d = state["generator"], state["discriminator"]
        z = jax.random.normal(rng, (batch["x"].shape[0], 4))
        fake = self.generator.apply({"params": g.params}, z)

        def d_loss(dp):
            real_logit = self.discriminator.apply({"params": dp}, self.real(batch))
            fake_logit = self.discriminator.apply({"params": dp}, jax.lax.stop_gradient(fake))
            return jnp.mean(optax.sigmoid_binary_cross_entropy(real_logit, jnp.ones_like(real_logit))
                            + optax.sigmoid_binary_cross_entropy(fake_logit, jnp.zeros_like(fake_logit)))

        loss_d, grads_d = jax.value_and_grad(d_loss)(d.params)
        d = d.apply_gradients(grads_d, self.txs["discriminator"])

        def g_loss(gp):
            logit = self.discriminator.apply({"params": d.params}, self.generator.apply({"params": gp}, z))
            return jnp.mean(optax.sigmoid_binary_cross_entropy(logit, jnp.ones_like(logit)))

        loss_g, grads_g = jax.value_and_grad(g_loss)(g.params)
        g = g.apply_gradients(grads_g, self.txs["generator"], self.config.optim.ema_decay)
        picture = jnp.broadcast_to(jax.nn.sigmoid(jnp.mean(fake)), (8, 8, 3))   # an image metric
        return state.update(generator=g, discriminator=d), {
            "train/d_loss": loss_d, "train/g_loss": loss_g, "samples": picture}

    def predict_step(self, state, batch):
        return self.generator.apply({"params": state["generator"].eval_params()}, batch["x"])

    def eval_step(self, state, batch):
        return {"sample": self.predict_step(state, batch), "mask": batch["mask"]}

    def make_evaluator(self, eval_pass):
        return ConcatEvaluator(lambda out: {
            "mean_distance": float(np.linalg.norm(out["sample"].mean(0) - REAL_MEAN))})
