"""`tryon`: AVTON's stage-wise training on the platform's loop, one config run per stage
(`config.stage`):

- `gmm` (IGMM): the CP-VTON GMM with the config's TPS kernel; loss = l1 * L1(warped cloth,
  parse_cloth) + grid * L_grid (ACGPN's second-order constraint on the source control
  points, `loss.grid_form` acgpn | paper) + vgg * VGG (ACGPN's relu5_1 warp term by
  default); BatchNorm in train mode (statistics of the global batch: the references ran
  on one GPU). Evaluated on the paired split: L1 and SSIM of the warped cloth against the
  person's garment and, where the data know the true warp (the synthetic set), the mean
  end-point error in pixels over the garment, beside the identity warp's.
- `lpm` (LPM, reconstructed): ACGPN's Refine U-Net on concat(agnostic, cloth, cloth mask,
  skin colour) -> limb-mask logit + limb RGB; loss = bce * BCE(mask) + limb_l1 * L1 on the
  limb pixels (+ vgg * VGG). Evaluated by the limb mask's IoU and the limb L1.
- `tofm` (TOFM): the CP-VTON TOM U-Net on concat(agnostic, warped cloth[, limb image, limb
  mask]) -> rendered person + composition mask alpha; try-on = alpha * warped + (1 - alpha)
  * rendered; loss = L1 + vgg * VGG + mask_l1 * L1(alpha, warped mask) + adv * GAN(D) + fm *
  feature matching (pix2pixHD weighting 4 / (n_layers + 1) / num_D); the conditional
  multiscale D (its own optimizer, `config.d_optim`) on concat(input, image), D loss =
  0.5 (real + fake). G and D are updated from the same forward pass, as pix2pixHD does.
  The warped cloth comes from the files the GMM stage wrote (`tofm.warp_source="dumped"`,
  avton/dump.py), from the true warp of the synthetic set ("ground_truth") or from a GMM
  inside the state ("gmm"; `tofm.train_gmm` fine-tunes it end to end); the limbs likewise
  (`tofm.limb_source` dumped | ground_truth | none; none is CP-VTON's 25-input TOM).
The TOFM's evaluation has two passes: `paired` (test_paired: L1, SSIM and LPIPS of the
try-on against the person's photo) and `unpaired` (the test pairs list: FID of the try-on
set against the photos, IS of the try-on set), with the LPIPS / Inception weights of
`eval.lpips_checkpoint` / `eval.inception_checkpoint` (common/image_metrics.py; empty: a
random-init stand-in, its metrics named *_stand_in).
A frozen VGG-19 network `vgg` joins the state when a VGG term is on (random weights unless
`init_from=vgg=PATH` gives torchvision's, converted by `python -m common.convert
torchvision vgg19.pth OUT --arch vgg19`).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avton import data, losses, metrics, tps
from avton import model as M
from avton import representation as R
from common import gan, image_metrics, models, optim
from common.evaluators import EvalPass, SumEvaluator
from common.tasks import DatasetTask, register_task
from common.train_state import Network, TrainState

STAGES = ("gmm", "lpm", "tofm")


@register_task("tryon")
class TryonTask(DatasetTask):
    def __init__(self, config):
        super().__init__(config)
        self.stage = config.stage
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}: {' | '.join(STAGES)}")
        d = config.data
        self.h, self.w = int(d.height), int(d.width)
        self.agnostic_ch = R.agnostic_channels(bool(d.preserve))
        self.model = self._create(config.model.name, config.model.kwargs)
        t = config.tofm
        self.uses_gmm = self.stage == "gmm" or (self.stage == "tofm" and t.warp_source == "gmm")
        if self.stage == "tofm":
            self.disc = models.create_model(config.disc.name, **config.disc.kwargs.to_dict())
            self.gmm = self._create(config.gmm.name, config.gmm.kwargs) if t.warp_source == "gmm" else None
        l = config.loss
        self.uses_vgg = l.vgg > 0

    def _create(self, name, kwargs):
        kwargs = kwargs.to_dict()
        variant = name.split(":")[-1]
        if M.VARIANTS.get(variant, {}).get("kind") == "gmm":
            kwargs.update(height=self.h, width=self.w)
        return models.create_model(name, **kwargs)

    # ------------------------------------------------------------------ data
    def data_module(self):
        return data

    def synthetic_batch(self, batch_size: int) -> dict:
        rng = np.random.default_rng(0)
        h, w = self.h, self.w
        u = lambda *s: rng.uniform(-1, 1, (batch_size,) + s).astype(np.float32)  # noqa: E731
        m = lambda *s: (rng.uniform(0, 1, (batch_size,) + s) > 0.5).astype(np.float32)  # noqa: E731
        b = {"agnostic": u(h, w, self.agnostic_ch), "image": u(h, w, 3), "cloth": u(h, w, 3),
             "cloth_mask": m(h, w, 1), "parse_cloth": u(h, w, 3), "garment_mask": m(h, w, 1),
             "limb_mask": m(h, w, 1), "limb_image": u(h, w, 3), "skin": u(h, w, 3),
             "warp_theta": 0.05 * u(50), "has_warp": np.ones(batch_size, np.float32),
             "category": np.zeros(batch_size, np.int32), "record": np.arange(batch_size, dtype=np.int32)}
        if self.config.data.warp_dir:
            b.update(warp_cloth=u(h, w, 3), warp_mask=m(h, w, 1))
        if self.config.data.limb_dir:
            b.update(pred_limb_image=u(h, w, 3), pred_limb_mask=m(h, w, 1))
        return b

    # ------------------------------------------------------------------ state
    def _in_ch(self) -> int:
        if self.stage == "lpm":
            return self.agnostic_ch + 3 + 1 + 3
        return self.agnostic_ch + 3 + (4 if self.config.tofm.limb_source != "none" else 0)

    def _init_net(self, module, rng, kind):
        z = lambda c: jnp.zeros((1, self.h, self.w, c))  # noqa: E731
        args = (z(self.agnostic_ch), z(3)) if kind == "gmm" else (z(self._in_ch()),) if kind != "disc" else (
            z(self._in_ch() + 3),)
        variables = module.init(rng, *args)
        return variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def _tx(self, name: str):
        c = self.config
        o = c.d_optim if name == "disc" else c.optim
        tx, schedule = optim.make_optimizer(c, self.steps_per_epoch(), optim=o)
        if c.lr_schedule == "paper":      # CP-VTON's LambdaLR: keep_steps constant, then linear to 0
            keep, decay = float(c.keep_steps), float(c.decay_steps)
            factor = lambda s: 1.0 - jnp.maximum(0.0, s - keep) / (decay + 1.0)  # noqa: E731
            tx = optax.chain(tx, optax.scale_by_schedule(factor))
            return tx, (lambda s, f=schedule: f(s) * factor(s))
        return tx, schedule

    @functools.cached_property
    def txs(self) -> dict:
        names = {"gmm": ["gmm"], "lpm": ["lpm"], "tofm": ["tofm", "disc"]}[self.stage]
        if self.stage == "tofm" and self.gmm is not None:
            names.append("gmm")
        out = {n: self._tx(n) for n in names}
        if self.stage == "tofm" and self.gmm is not None and not self.config.tofm.train_gmm:
            out["gmm"] = (optax.set_to_zero(), lambda s: 0.0)
        if self.uses_vgg:
            out["vgg"] = (optax.set_to_zero(), lambda s: 0.0)
        return out

    def init(self, rng) -> TrainState:
        keys = jax.random.split(rng, 4)
        nets = {}
        if self.stage == "gmm":
            p, s = self._init_net(self.model, keys[0], "gmm")
            nets["gmm"] = Network.create(p, self.txs["gmm"][0], s)
        elif self.stage == "lpm":
            p, s = self._init_net(self.model, keys[0], "refine")
            nets["lpm"] = Network.create(p, self.txs["lpm"][0], s)
        else:
            p, s = self._init_net(self.model, keys[0], "unet")
            nets["tofm"] = Network.create(p, self.txs["tofm"][0], s)
            p, s = self._init_net(self.disc, keys[1], "disc")
            nets["disc"] = Network.create(p, self.txs["disc"][0], s)
            if self.gmm is not None:
                p, s = self._init_net(self.gmm, keys[2], "gmm")
                nets["gmm"] = Network.create(p, self.txs["gmm"][0], s)
        if self.uses_vgg:
            nets["vgg"] = Network.create(losses.init_vgg(keys[3]), self.txs["vgg"][0])
        return TrainState.create(**nets)

    # ------------------------------------------------------------------ forward passes
    def _true_grid(self, batch):
        return tps.tps_grid(self.h, self.w, 5, "tps_cpvton")(batch["warp_theta"])

    def warp(self, net, module, batch, train: bool):
        """(grid, theta, warped cloth, warped mask, new model state) of a GMM."""
        if train:
            (grid, theta), new = module.apply({"params": net.params, **net.model_state}, batch["agnostic"],
                                              batch["cloth"], train=True, mutable=["batch_stats"])
        else:
            grid, theta = module.apply({"params": net.params, **net.model_state}, batch["agnostic"],
                                       batch["cloth"], train=False)
            new = net.model_state
        warped = tps.grid_sample(batch["cloth"], grid, "border")
        warped_mask = tps.grid_sample(batch["cloth_mask"], grid, "zeros")
        return grid, theta, warped, warped_mask, new

    def lpm_input(self, batch):
        return jnp.concatenate([batch["agnostic"], batch["cloth"], batch["cloth_mask"], batch["skin"]], -1)

    def lpm_outputs(self, raw):
        """(mask logit, mask prob, limb image) of the LPM's raw output."""
        return raw[..., :1], jax.nn.sigmoid(raw[..., :1]), jnp.tanh(raw[..., 1:4])

    def tofm_inputs(self, state, batch, train: bool, gmm_params=None):
        """(generator input, warped cloth, warped mask, gmm model state)."""
        t = self.config.tofm
        gmm_state = None
        if t.warp_source == "dumped":
            wc, wm = batch["warp_cloth"], batch["warp_mask"]
        elif t.warp_source == "ground_truth":
            grid = self._true_grid(batch)
            wc, wm = tps.grid_sample(batch["cloth"], grid, "border"), tps.grid_sample(batch["cloth_mask"], grid, "zeros")
        elif t.warp_source == "gmm":
            net = state["gmm"] if gmm_params is None else state["gmm"].replace(params=gmm_params)
            _, _, wc, wm, gmm_state = self.warp(net, self.gmm, batch, train and t.train_gmm)
            if not t.train_gmm:
                wc, wm = jax.lax.stop_gradient(wc), jax.lax.stop_gradient(wm)
        else:
            raise ValueError(f"unknown tofm.warp_source {t.warp_source!r}: dumped | ground_truth | gmm")
        parts = [batch["agnostic"], wc]
        if t.limb_source == "dumped":
            parts += [batch["pred_limb_image"], batch["pred_limb_mask"]]
        elif t.limb_source == "ground_truth":
            parts += [batch["limb_image"], batch["limb_mask"]]
        elif t.limb_source != "none":
            raise ValueError(f"unknown tofm.limb_source {t.limb_source!r}: dumped | ground_truth | none")
        return jnp.concatenate(parts, -1), wc, wm, gmm_state

    def _vgg(self, state, x, y, layers):
        return losses.perceptual(state["vgg"].params, x, y, layers)

    def _grid_loss(self, theta):
        l = self.config.loss
        gen = self.model.grid_gen if self.stage == "gmm" else self.gmm.grid_gen
        q = tps.to_acgpn_order(gen.source_points(theta), gen.grid_size)
        if l.grid_form == "acgpn":
            return tps.grid_constraint_acgpn(q, gen.grid_size)[0]
        if l.grid_form == "paper":
            return tps.grid_constraint_paper(q, gen.grid_size)[0]
        raise ValueError(f"unknown loss.grid_form {l.grid_form!r}: acgpn | paper")

    # ------------------------------------------------------------------ steps
    def train_step(self, state: TrainState, batch, rng):
        return {"gmm": self._gmm_step, "lpm": self._lpm_step, "tofm": self._tofm_step}[self.stage](state, batch)

    def _gmm_step(self, state, batch):
        l = self.config.loss
        net = state["gmm"]

        def loss_fn(params):
            grid, theta, warped, _, new = self.warp(net.replace(params=params), self.model, batch, True)
            terms = {"l1": losses.l1(warped, batch["parse_cloth"])}
            loss = l.l1 * terms["l1"]
            if l.grid > 0:
                terms["grid"] = self._grid_loss(theta)
                loss += l.grid * terms["grid"]
            if l.vgg > 0:
                terms["vgg"] = self._vgg(state, warped, batch["parse_cloth"], l.vgg_layers)
                loss += l.vgg * terms["vgg"]
            has = batch["has_warp"]          # the synthetic set's true warp; 0 on real data
            epe = metrics.end_point_error(grid, self._true_grid(batch), batch["garment_mask"])
            terms["epe"] = (epe * has).sum() / jnp.maximum(has.sum(), 1.0)
            return loss, (terms, new)

        (loss, (terms, new)), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        net = net.apply_gradients(grads, self.txs["gmm"][0], model_state=new)
        return state.update(gmm=net), {"train/loss": loss, **{f"train/{k}": v for k, v in terms.items()},
                                       "lr": self.txs["gmm"][1](state.step)}

    def _lpm_step(self, state, batch):
        l = self.config.loss
        net = state["lpm"]
        x = self.lpm_input(batch)

        def loss_fn(params):
            logit, _, limb = self.lpm_outputs(self.model.apply({"params": params}, x))
            m = batch["limb_mask"]
            terms = {"bce": losses.bce_mask(logit, m), "limb_l1": losses.l1(limb * m, batch["image"] * m)}
            loss = l.bce * terms["bce"] + l.limb_l1 * terms["limb_l1"]
            if l.vgg > 0:
                terms["vgg"] = self._vgg(state, limb * m, batch["image"] * m, l.vgg_layers)
                loss += l.vgg * terms["vgg"]
            return loss, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
        net = net.apply_gradients(grads, self.txs["lpm"][0])
        return state.update(lpm=net), {"train/loss": loss, **{f"train/{k}": v for k, v in terms.items()},
                                       "lr": self.txs["lpm"][1](state.step)}

    def _tofm_step(self, state, batch):
        l, c = self.config.loss, self.config
        d_loss_fn, g_loss_fn = gan.gan_losses(l.gan)
        g_net, d_net = state["tofm"], state["disc"]
        fm_weight = l.fm * 4.0 / (c.disc.kwargs.get("n_layers", 3) + 1) / c.disc.kwargs.get("num_d", 2)
        train_gmm = self.gmm is not None and c.tofm.train_gmm
        image = batch["image"]

        def g_loss(params):
            g_params, gmm_params = params
            x, wc, wm, gmm_state = self.tofm_inputs(state, batch, True, gmm_params)
            tryon, _, alpha = M.tryon_compose(self.model.apply({"params": g_params}, x), wc)
            terms = {"l1": losses.l1(tryon, image), "mask_l1": losses.l1(alpha, wm)}
            loss = l.l1 * terms["l1"] + l.mask_l1 * terms["mask_l1"]
            if l.vgg > 0:
                terms["vgg"] = self._vgg(state, tryon, image, "all")
                loss += l.vgg * terms["vgg"]
            if l.adv > 0 or l.fm > 0:
                fake = self.disc.apply({"params": d_net.params}, jnp.concatenate([x, tryon], -1))
                real = self.disc.apply({"params": d_net.params}, jnp.concatenate([x, image], -1))
                terms["g_gan"] = g_loss_fn(fake)
                terms["g_fm"] = gan.feature_matching_loss(real, fake, fm_weight, skip_last=True)
                loss += l.adv * terms["g_gan"] + terms["g_fm"]
            if train_gmm and l.grid > 0:
                theta = self.gmm.apply({"params": gmm_params, **state["gmm"].model_state}, batch["agnostic"],
                                       batch["cloth"], train=False)[1]
                terms["grid"] = self._grid_loss(theta)
                loss += l.grid * terms["grid"]
            return loss, (terms, x, tryon, gmm_state)

        gmm_params = state["gmm"].params if self.gmm is not None else None
        (loss, (terms, x, tryon, gmm_state)), (g_grads, gmm_grads) = jax.value_and_grad(g_loss, has_aux=True)(
            (g_net.params, gmm_params))

        def d_loss(params):
            real = self.disc.apply({"params": params}, jnp.concatenate([x, image], -1))
            fake = self.disc.apply({"params": params}, jnp.concatenate([x, jax.lax.stop_gradient(tryon)], -1))
            return l.d_scale * d_loss_fn(real, fake)

        d_val, d_grads = jax.value_and_grad(d_loss)(d_net.params)
        nets = {"tofm": g_net.apply_gradients(g_grads, self.txs["tofm"][0]),
                "disc": d_net.apply_gradients(d_grads, self.txs["disc"][0])}
        if train_gmm:
            nets["gmm"] = state["gmm"].apply_gradients(gmm_grads, self.txs["gmm"][0], model_state=gmm_state)
        return state.update(**nets), {"train/loss": loss, "train/d_loss": d_val,
                                      **{f"train/{k}": v for k, v in terms.items()},
                                      "lr": self.txs["tofm"][1](state.step)}

    # ------------------------------------------------------------------ inference
    def predict_step(self, state: TrainState, batch):
        """The stage's outputs in inference mode (maps [B, H, W, C])."""
        if self.stage == "gmm":
            grid, theta, warped, warped_mask, _ = self.warp(state["gmm"], self.model, batch, False)
            return {"grid": grid, "theta": theta, "warp_cloth": warped, "warp_mask": warped_mask}
        if self.stage == "lpm":
            _, prob, limb = self.lpm_outputs(self.model.apply({"params": state["lpm"].params}, self.lpm_input(batch)))
            return {"limb_mask": prob, "limb_image": limb}
        x, wc, wm, _ = self.tofm_inputs(state, batch, False)
        tryon, rendered, alpha = M.tryon_compose(self.model.apply({"params": state["tofm"].params}, x), wc)
        return {"tryon": tryon, "rendered": rendered, "alpha": alpha, "warp_cloth": wc, "warp_mask": wm}

    @property
    def quality(self) -> bool:
        """The TOFM's evaluation scores the try-on with LPIPS (paired) and FID / IS (unpaired)."""
        return self.stage == "tofm" and bool(self.config.eval.quality)

    @functools.cached_property
    def quality_nets(self) -> image_metrics.QualityNetworks:
        e = self.config.eval
        return image_metrics.QualityNetworks(e.lpips_net, e.lpips_checkpoint, e.inception_checkpoint,
                                             e.inception_size, e.is_network, e.is_checkpoint)

    def eval_step(self, state: TrainState, batch, setting: str = "paired"):
        out = self.predict_step(state, batch)
        mask = batch["mask"]
        if setting == "unpaired":     # another person's garment: no ground truth, only the image sets
            return {"n": mask.sum(), "fake": out["tryon"], "real": batch["image"], "mask": mask}
        s = lambda v: (v * mask).sum()  # noqa: E731
        ssim_mode = self.config.eval.ssim_mode
        res = {"n": mask.sum()}
        if self.stage == "gmm":
            target = batch["parse_cloth"]
            has = batch["has_warp"] * mask
            true = self._true_grid(batch)
            identity = jnp.broadcast_to(jnp.asarray(tps.base_grid(self.h, self.w), jnp.float32), true.shape)
            res.update(l1=s(metrics.masked_l1(out["warp_cloth"], target)),
                       ssim=s(metrics.ssim(metrics.to_unit(out["warp_cloth"]), metrics.to_unit(target), ssim_mode)),
                       n_warp=has.sum(),
                       epe=(metrics.end_point_error(out["grid"], true, batch["garment_mask"]) * has).sum(),
                       epe_identity=(metrics.end_point_error(identity, true, batch["garment_mask"]) * has).sum())
        elif self.stage == "lpm":
            pred, gt = out["limb_mask"] > 0.5, batch["limb_mask"] > 0.5
            inter, union = (pred & gt).sum((1, 2, 3)), (pred | gt).sum((1, 2, 3))
            res.update(limb_iou=s(jnp.where(union > 0, inter / jnp.maximum(union, 1), 1.0)),
                       limb_l1=s(metrics.masked_l1(out["limb_image"], batch["image"], batch["limb_mask"])))
        else:
            res.update(l1=s(metrics.masked_l1(out["tryon"], batch["image"])),
                       ssim=s(metrics.ssim(metrics.to_unit(out["tryon"]), metrics.to_unit(batch["image"]), ssim_mode)),
                       alpha=s(out["alpha"].mean((1, 2, 3))))
            if self.quality:
                res.update(fake=out["tryon"], real=batch["image"], mask=mask)
        return res

    def eval_passes(self):
        """gmm, lpm: one pass `eval` on data.eval_split. tofm: `paired` on data.eval_split
        (each person with their own garment: L1, SSIM, LPIPS against the photo) and, with
        eval.quality, `unpaired` on eval.unpaired_split (the pairs list's other garments: FID
        of the try-on set against the person photos, IS of the try-on set)."""
        if self.stage != "tofm":
            return [EvalPass("eval", self.config.data.eval_split)]
        passes = [EvalPass("paired", self.config.data.eval_split)]
        if self.quality:
            passes.append(EvalPass("unpaired", self.config.eval.unpaired_split, (("setting", "unpaired"),)))
        return passes

    def make_evaluator(self, eval_pass):
        sums = self._sum_evaluator()
        if not self.quality:
            return sums
        e = self.config.eval
        unpaired = eval_pass.kwargs.get("setting") == "unpaired"
        return image_metrics.QualityEvaluator(self.quality_nets, inner=sums, lpips=not unpaired, fid_is=unpaired,
                                              is_splits=e.is_splits, fid_method=e.fid_method)

    def _sum_evaluator(self):
        def finalize(sums):
            n = max(float(sums["n"]), 1.0)
            out = {k: float(v) / n for k, v in sums.items() if k not in ("n", "n_warp", "epe", "epe_identity")}
            out["count"] = int(sums["n"])
            if "n_warp" in sums:
                nw = float(sums["n_warp"])
                out["epe_px"] = float(sums["epe"]) / nw if nw else float("nan")
                out["epe_identity_px"] = float(sums["epe_identity"]) / nw if nw else float("nan")
            return out
        return SumEvaluator(finalize)

    def summarize(self, results):
        lines = []
        for name, m in results.items():
            lines.append(f"{name} ({self.stage}, {m.get('count', 0)} images): " +
                         ", ".join(f"{k}={v:.4f}" for k, v in m.items() if k != "count"))
        return "\n".join(lines)
