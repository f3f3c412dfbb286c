"""`makeup`: adversarial training of PSGAN / PSGAN++ on the platform's loop (psgan/solver.py).

State: four networks in one TrainState: `generator` (Adam, config.optim), `disc_a` and
`disc_b` (Adam, config.d_optim; their spectral-norm u/v in model_state), and `vgg` (the
frozen perceptual net: never updated; random unless `init_from="vgg=PATH"` loads
torchvision weights converted by `python -m common.convert torchvision vgg16.pth PATH --arch vgg16`).

One train_step = one official iteration (loss.mode = "psgan"):
 1. fake_A = G(x, y), fake_B = G(y, x) (no gradient);
 2. D_A on (y real, fake_A fake), D_B on (x real, fake_B fake): 0.5 (real + fake) of the GAN
    loss, one Adam step each; each D call runs one power iteration and the u/v it leaves are
    passed to the next call, as the released SN's in-place buffers are;
 3. with the updated Ds: idt_A = G(x, x), idt_B = G(y, y), fake_A, fake_B, rec_A = G(fake_A, x)
    and rec_B = G(fake_B, y) (the original's masks and diffs on both sides), and
    L_G = adv_A + adv_B + 0.5 [λ_A L1(rec_A, x) + λ_B L1(rec_B, y) + λ_A λ_vgg MSE(vgg(fake_A), vgg(x))
          + λ_B λ_vgg MSE(vgg(fake_B), vgg(y))] + 0.5 λ_idt [λ_A L1(idt_A, x) + λ_B L1(idt_B, y)]
          + Σ_r w_r (H(fake_A | m_x^r -> y, m_y^r) + H(fake_B | m_y^r -> x, m_x^r)).
 loss.mode = "psganpp" (PSGAN++ [draft]; our reconstruction): fake_B = R(y) (IDNet + STNet,
 no AMM), rec_A = R(fake_A), rec_B = T(R(y), y), the histogram terms as above, plus the makeup
 detail loss λ_detail |fake_A(P_x) - y(P_y)|_1 on the fixed-topology nose/cheek points.
Every term's weight, the GAN loss (common.gan: lsgan | bce | hinge), the VGG tap and the
histogram indexing come from config.loss. Batches of any size shard over the data axis: every
loss is a per-image mean, averaged over the batch.

Evaluation (regression metrics, not the papers' user study): per-region histogram distance of
T(x, y) to the reference (and, for comparison, of x itself), SSIM of T(x, y) to x outside the
makeup regions, the fraction of in-region attention argmaxes that land in the same region;
with an IDNet, the lip histogram distance of R(y) to the source x.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import gan, models, optim
from common.evaluators import ConcatEvaluator
from common.layers import vgg as vgg_lib
from common.tasks import DatasetTask, register_task
from common.train_state import Network, TrainState
from psgan import data, losses
from psgan.model import DIFF_DIM, Discriminator, resize_masks

REGIONS = ("lip", "skin", "eye")
NETS = ("generator", "disc_a", "disc_b", "vgg")


def _l1(a, b):
    return jnp.mean(jnp.abs(a - b), axis=tuple(range(1, a.ndim)))


def _mse(a, b):
    return jnp.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))


@register_task("makeup")
class MakeupTask(DatasetTask):
    def __init__(self, config):
        super().__init__(config)
        self.model = models.create_model(config.model.name, **config.model.kwargs.to_dict())
        self.disc = Discriminator(int(config.disc.conv_dim), int(config.disc.repeat_num))
        self.vgg = vgg_lib.ARCHS[config.vgg.arch]()
        self.vgg_layer = str(config.loss.vgg_layer)
        self.d_loss_fn, self.g_loss_fn = gan.gan_losses(config.loss.gan)
        if config.loss.mode not in ("psgan", "psganpp"):
            raise ValueError(f"unknown loss.mode {config.loss.mode!r}: psgan | psganpp")
        if config.loss.mode == "psganpp" and not self.model.idnet:
            raise ValueError(f"loss.mode=psganpp needs a generator with an IDNet, {config.model.name} has none")

    # ------------------------------------------------------------------ data
    @functools.cached_property
    def num_train_examples(self) -> int:
        n = int(self.config.data.num_train_examples)
        if n > 0:
            return n
        dom = data.domains(self.config, self.config.data.train_split)
        return max(len(dom.makeup), len(dom.non_makeup))

    def data_module(self):
        return data

    def synthetic_batch(self, batch_size: int) -> dict:
        s = int(self.config.data.image_size)
        rng = np.random.default_rng(0)
        masks = np.zeros((batch_size, 3, s, s), np.float32)
        masks[:, 0, s // 2:s // 2 + s // 8, s // 3:2 * s // 3] = 1
        masks[:, 1, s // 4:s // 2, s // 4:3 * s // 4] = 1
        masks[:, 2, s // 5:s // 4, s // 4:3 * s // 4] = 1
        diff = rng.standard_normal((batch_size, 3, s // 4, s // 4, DIFF_DIM)).astype(np.float32)
        diff /= np.linalg.norm(diff, axis=-1, keepdims=True)
        diff *= np.asarray(resize_masks(masks, (s // 4, s // 4)))[..., None]
        img = lambda: np.tanh(rng.standard_normal((batch_size, s, s, 3))).astype(np.float32)  # noqa: E731
        k = data.NUM_POINTS
        pts = rng.uniform(0, s - 1, (batch_size, k, 2)).astype(np.float32)
        return {"x": img(), "mask_x": masks, "diff_x": diff, "pts_x": pts,
                "y": img(), "mask_y": masks[:, :, ::-1].copy(), "diff_y": diff[:, :, ::-1].copy(), "pts_y": pts,
                "pts_valid": np.ones((batch_size, k), np.float32)}

    # ------------------------------------------------------------------ state
    @functools.cached_property
    def txs(self):
        g_tx, g_lr = optim.make_optimizer(self.config, self.steps_per_epoch())
        d_tx, d_lr = optim.make_optimizer(self.config, self.steps_per_epoch(), optim=self.config.d_optim)
        return {"generator": (g_tx, g_lr), "disc": (d_tx, d_lr)}

    def init(self, rng) -> TrainState:
        # The non-partitionable threefry: XLA:CPU compiles this init's ~80 random draws several
        # times faster (the test preset's init: 37 s -> 10 s of CPU), and every device still
        # computes the same values.
        with jax.threefry_partitionable(False):
            return self._init(rng)

    def _init(self, rng) -> TrainState:
        s = int(self.config.data.image_size)
        k_g, k_a, k_b, k_v = jax.random.split(rng, 4)
        x = jnp.zeros((1, s, s, 3))
        m = jnp.zeros((1, 3, s, s))
        d = jnp.zeros((1, 3, s // 4, s // 4, DIFF_DIM))
        g = self.model.init(k_g, x, x, m, m, d, d)
        g_tx, d_tx = self.txs["generator"][0], self.txs["disc"][0]

        def disc(key):
            v = self.disc.init(key, x)
            return Network.create(v["params"], d_tx, {"spectral_stats": v["spectral_stats"]})
        v = self.vgg.init(k_v, x, features=(self.vgg_layer,))
        return TrainState.create(generator=Network.create(g["params"], g_tx),
                                 disc_a=disc(k_a), disc_b=disc(k_b),
                                 vgg=Network.create(v["params"], optax.set_to_zero()))

    # ------------------------------------------------------------------ pieces
    def G(self, params, x, y, mx, my, dx, dy):
        return self.model.apply({"params": params}, x, y, mx, my, dx, dy)

    def R(self, params, y):
        return self.model.apply({"params": params}, y, method=self.model.remove)

    def D(self, params, stats, x):
        """(logits, new u/v): one power iteration per call, as the released SN."""
        out, upd = self.disc.apply({"params": params, **stats}, x, mutable=["spectral_stats"])
        return out, upd

    def features(self, vgg_params, x):
        return self.vgg.apply({"params": vgg_params}, x, features=(self.vgg_layer,))[self.vgg_layer]

    def d_step(self, net: Network, real, fake):
        def loss_fn(params):
            out_real, stats = self.D(params, net.model_state, real)
            out_fake, stats = self.D(params, stats, fake)
            return 0.5 * self.d_loss_fn(out_real, out_fake), stats
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        return net.apply_gradients(grads, self.txs["disc"][0], model_state=stats), loss

    # ------------------------------------------------------------------ steps
    def train_step(self, state: TrainState, batch, rng):
        l = self.config.loss
        pp = l.mode == "psganpp"
        x, y = batch["x"], batch["y"]
        mx, my, dx, dy = batch["mask_x"], batch["mask_y"], batch["diff_x"], batch["diff_y"]
        g_net = state["generator"]
        cat = lambda *a: jnp.concatenate(a, 0)                    # noqa: E731
        n = x.shape[0]

        def split(t, k):
            return [t[i * n:(i + 1) * n] for i in range(k)]

        # Independent generator passes run as one call on the stacked batch (instance norm and
        # the AMM are per image, so this equals separate calls) to keep the program small.
        # 1-2: the discriminators on detached fakes of the current generator
        if pp:
            fake_a = self.G(g_net.params, x, y, mx, my, dx, dy)
            fake_b = self.R(g_net.params, y)
        else:
            fake_a, fake_b = split(self.G(g_net.params, cat(x, y), cat(y, x), cat(mx, my), cat(my, mx),
                                          cat(dx, dy), cat(dy, dx)), 2)
        fake_a, fake_b = jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b)
        disc_a, d_a_loss = self.d_step(state["disc_a"], y, fake_a)
        disc_b, d_b_loss = self.d_step(state["disc_b"], x, fake_b)
        vgg_params = state["vgg"].params
        weights = (l.his_lip, l.his_skin, l.his_eye)

        def g_loss_fn(params):
            terms = {}
            if pp:
                fb = self.R(params, y)
                fa, rec_b = split(self.G(params, cat(x, fb), cat(y, y), cat(mx, my), cat(my, my),
                                         cat(dx, dy), cat(dy, dy)), 2)
                rec_a = self.R(params, fa)
                idt = []
                if l.lambda_idt:
                    idt = split(self.G(params, cat(x, y), cat(x, y), cat(mx, my), cat(mx, my),
                                       cat(dx, dy), cat(dx, dy)), 2)
            else:
                k = 4 if l.lambda_idt else 2
                src, ref = cat(x, y, x, y)[:k * n], cat(y, x, x, y)[:k * n]
                m_src, m_ref = cat(mx, my, mx, my)[:k * n], cat(my, mx, mx, my)[:k * n]
                d_src, d_ref = cat(dx, dy, dx, dy)[:k * n], cat(dy, dx, dx, dy)[:k * n]
                fa, fb, *idt = split(self.G(params, src, ref, m_src, m_ref, d_src, d_ref), k)
                rec_a, rec_b = split(self.G(params, cat(fa, fb), cat(x, y), cat(mx, my), cat(mx, my),
                                            cat(dx, dy), cat(dx, dy)), 2)
            pa, sa = self.D(disc_a.params, disc_a.model_state, fa)
            pb, sb = self.D(disc_b.params, disc_b.model_state, fb)
            terms["adv"] = self.g_loss_fn(pa) + self.g_loss_fn(pb)      # per-image means, averaged
            terms["cycle"] = 0.5 * (l.lambda_a * _l1(rec_a, x) + l.lambda_b * _l1(rec_b, y))
            if l.lambda_vgg:
                f_real = jax.lax.stop_gradient(self.features(vgg_params, cat(x, y)))
                f_fake = self.features(vgg_params, cat(fa, fb))
                e = _mse(f_fake, f_real)
                terms["vgg"] = 0.5 * l.lambda_vgg * (l.lambda_a * e[:n] + l.lambda_b * e[n:])
            if idt:
                terms["idt"] = 0.5 * l.lambda_idt * (l.lambda_a * _l1(idt[0], x) + l.lambda_b * _l1(idt[1], y))
            h = losses.region_histogram_loss(cat(fa, fb), cat(y, x), cat(mx, my), cat(my, mx), weights,
                                             l.hist_indexing)
            terms["hist"] = h[:n] + h[n:]
            if l.lambda_detail:
                terms["detail"] = l.lambda_detail * losses.detail_loss(fa, y, batch["pts_x"], batch["pts_y"],
                                                                       batch["pts_valid"], l.detail_reduction)
            total = sum(jnp.mean(t) for t in terms.values())
            return total, ({k: jnp.mean(v) for k, v in terms.items()}, sa, sb)

        (g_loss, (terms, sa, sb)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_net.params)
        g_net = g_net.apply_gradients(grads, self.txs["generator"][0])
        disc_a = disc_a.replace(model_state=sa)
        disc_b = disc_b.replace(model_state=sb)
        metrics = {"train/loss": g_loss, "train/g_loss": g_loss, "train/d_a_loss": d_a_loss,
                   "train/d_b_loss": d_b_loss, **{f"train/{k}": v for k, v in terms.items()},
                   "lr": self.txs["generator"][1](state.step), "train/g_grad_norm": optax.global_norm(grads)}
        return state.update(generator=g_net, disc_a=disc_a, disc_b=disc_b), metrics

    def predict_step(self, state: TrainState, batch):
        p = state["generator"].eval_params()
        return self.G(p, batch["x"], batch["y"], batch["mask_x"], batch["mask_y"], batch["diff_x"], batch["diff_y"])

    def eval_step(self, state: TrainState, batch):
        p = state["generator"].eval_params()
        x, y, mx, my = batch["x"], batch["y"], batch["mask_x"], batch["mask_y"]
        gamma, beta, attn = self.model.apply({"params": p}, x, y, mx, my, batch["diff_x"], batch["diff_y"],
                                             True, method=self.model.morph)
        out = self.model.apply({"params": p}, x, gamma, beta, method=self.model.apply_matrices)
        h = x.shape[1] // 4
        res = {"mask": batch["mask"]}
        for r, name in enumerate(REGIONS):
            res[f"hist_{name}"] = losses.hist_distance(out, y, mx[:, r], my[:, r])
            res[f"hist_{name}_source"] = losses.hist_distance(x, y, mx[:, r], my[:, r])
        outside = 1.0 - jnp.clip(jnp.sum(mx, 1), 0, 1)
        res["ssim_outside"] = losses.masked_ssim(out, x, outside)
        res["attention_in_region"] = losses.attention_in_region(attn, resize_masks(mx, (h, h)), resize_masks(my, (h, h)))
        if self.model.idnet:
            removed = self.model.apply({"params": p}, y, method=self.model.remove)
            res["removal_hist_lip"] = losses.hist_distance(removed, x, my[:, 0], mx[:, 0])
        return res

    def make_evaluator(self, eval_pass):
        def compute(arrays):
            return {k: float(np.mean(v)) for k, v in arrays.items()} | {"pairs": int(len(arrays["ssim_outside"]))}
        return ConcatEvaluator(compute)

    def summarize(self, results):
        lines = []
        for name, m in results.items():
            lines.append(f"{name}: histogram distance to the reference (lower is better), output / source")
            for r in REGIONS:
                lines.append(f"  {r:5s} {m[f'hist_{r}']:.4f} / {m[f'hist_{r}_source']:.4f}")
            lines.append(f"  SSIM to the source outside the makeup regions {m['ssim_outside']:.4f}; "
                         f"attention argmax in region {m['attention_in_region']:.4f}")
        return "\n".join(lines)


__all__ = ["MakeupTask", "NETS", "nn"]
