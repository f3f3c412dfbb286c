"""Image-quality metrics of generative models: LPIPS, FID and the Inception Score, with
their standard networks and converters from the public weight files.

- `LPIPS(net="alex" | "vgg")`: richzhang/PerceptualSimilarity v0.1 (the `lpips` package):
  its ScalingLayer ((x - shift) / scale on [-1, 1] inputs), the torchvision AlexNet
  (relu1..relu5) or VGG-16 (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) trunk, features
  unit-normalised over channels (eps 1e-10), squared differences weighted by the 1x1 heads
  lin0..lin4 (no bias) and spatially averaged, summed over layers. Per pair, [B].
- `frechet_distance(mu1, sigma1, mu2, sigma2)`: pytorch-fid's formula, on the host in
  float64 with scipy.linalg.sqrtm (and its eps retry); `fid(features_a, features_b)` from
  Inception pool3 features (common/layers/inception.py).
  `fid(..., method="lowrank")`: the same distance in closed form from the features (an
  N x N SVD; exact when there are fewer images than the 2048 dimensions, where sqrtm of
  the singular product is not, and fast: the tests and CPU presets use it).
- `inception_score(logits, splits=10)`: exp(E KL(p(y|x) || p(y))) per split, mean and std
  over the splits (10 is the standard; some papers report splits=1).

Weights: `python -m common.image_metrics lpips LIN.pth BACKBONE.pth OUT --net alex`
(lin weights: the lpips package's weights/v0.1/alex.pth or vgg.pth; backbone: torchvision's
alexnet-owt-7be5be79.pth / vgg16-397923af.pth, or a whole LPIPS state_dict as both) and
`python -m common.image_metrics inception pt_inception-2015-12-05-6726825d.pth OUT`
(pytorch-fid's FID weights; `--blocks torchvision` with torchvision's
inception_v3_google-0cc3c7bd.pth for inception-score-pytorch's IS). Without weights, `QualityNetworks` builds random-init
stand-ins and every metric it reports is named `<metric>_stand_in`: numbers that only
test the plumbing, never comparable with published figures.

`QualityEvaluator` (a common.evaluators.Evaluator) scores an evaluation pass from the
`fake` / `real` images [B, H, W, 3] in [-1, 1] that a task's eval_step returns: `lpips`
per pair (paired setting) and/or `fid`, `is`, `is_std` over the whole pass (unpaired).
"""
import argparse
import functools
import logging
import os
import re
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from common.errors import ConfigError, UserError, first_line
from common.layers import alexnet, inception, vgg

log = logging.getLogger(__name__)

LPIPS_NETS = {"alex": ("relu1", "relu2", "relu3", "relu4", "relu5"),
              "vgg": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")}
SHIFT = (-0.030, -0.088, -0.188)          # lpips ScalingLayer
SCALE = (0.458, 0.448, 0.450)


def normalize_channels(f, eps: float = 1e-10):
    return f / (jnp.sqrt(jnp.sum(f * f, -1, keepdims=True)) + eps)


class LPIPS(nn.Module):
    net: str = "alex"

    @nn.compact
    def __call__(self, x0, x1):
        """Per-pair LPIPS [B] of images in [-1, 1], [B, H, W, 3]."""
        if self.net not in LPIPS_NETS:
            raise ValueError(f"unknown LPIPS net {self.net!r}: {' | '.join(LPIPS_NETS)}")
        taps = LPIPS_NETS[self.net]
        x = jnp.concatenate([x0, x1], 0)
        x = (x - jnp.asarray(SHIFT, x.dtype)) / jnp.asarray(SCALE, x.dtype)
        trunk = alexnet.AlexNetFeatures(name="net") if self.net == "alex" else vgg.VGG("vgg16", name="net")
        feats = trunk(x, features=taps)
        total = 0.0
        for k, name in enumerate(taps):
            if 0 in feats[name].shape[1:3]:
                raise ValueError(f"LPIPS-{self.net}: images of {x0.shape[1]}x{x0.shape[2]} are too small "
                                 f"(no {name} feature map left); give at least 64x48")
            f0, f1 = jnp.split(normalize_channels(feats[name]), 2, 0)
            d = nn.Dense(1, use_bias=False, name=f"lin{k}")((f0 - f1) ** 2)
            total = total + d.mean((1, 2, 3))
        return total


# ---------------------------------------------------------------- FID / IS
def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of [N, D] features, float64, as pytorch-fid."""
    f = np.asarray(features, np.float64)
    if f.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {f.shape[0]}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """pytorch-fid's calculate_frechet_distance."""
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular product; adding %g to the diagonal of the covariances", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm; "
                             "too few images for the feature dimension?")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_lowrank(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The same distance in closed form from the features: with A, B the centred feature
    matrices, tr sqrt(S_a S_b) is the nuclear norm of A B^T / sqrt((n_a - 1)(n_b - 1)), an
    n_a x n_b SVD instead of a D x D sqrtm. Equal to pytorch-fid's where its sqrtm is
    accurate; exact (and fast) also when there are fewer images than feature dimensions,
    where sqrtm of the singular product is not."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    for f in (a, b):
        if f.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {f.shape[0]}")
    diff = a.mean(0) - b.mean(0)
    ac, bc = a - a.mean(0), b - b.mean(0)
    na, nb = a.shape[0] - 1, b.shape[0] - 1
    tr_covmean = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt(na * nb)
    return float(diff.dot(diff) + (ac * ac).sum() / na + (bc * bc).sum() / nb - 2 * tr_covmean)


FID_METHODS = ("sqrtm", "lowrank")
IS_NETWORKS = ("fid", "torchvision")


def fid(features_a: np.ndarray, features_b: np.ndarray, method: str = "sqrtm") -> float:
    """FID of two [N, D] feature sets: `sqrtm` is pytorch-fid's computation; `lowrank`
    the closed form of `frechet_distance_lowrank`."""
    if method == "lowrank":
        return frechet_distance_lowrank(features_a, features_b)
    if method != "sqrtm":
        raise ValueError(f"unknown FID method {method!r}: {' | '.join(FID_METHODS)}")
    return frechet_distance(*activation_statistics(features_a), *activation_statistics(features_b))


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `splits` equal parts of exp(mean_x KL(p(y|x) || p(y))), in float64."""
    z = np.asarray(logits, np.float64)
    if z.shape[0] < splits:
        raise ValueError(f"the Inception Score with {splits} splits needs at least {splits} images, "
                         f"got {z.shape[0]}")
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    n = z.shape[0] // splits
    scores = []
    for k in range(splits):
        lp = logp[k * n:(k + 1) * n]
        log_py = np.log(np.exp(lp).mean(0))
        kl = (np.exp(lp) * (lp - log_py)).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------- networks and evaluator
def stand_in_variables(module: nn.Module, *args, seed: int = 0) -> dict:
    """Random weights for a metric network that has none, drawn with NumPy (initialising a
    24M-parameter Inception through flax takes minutes on a busy CPU): He-normal kernels,
    LPIPS heads uniform in [0, 1/C] (non-negative like the trained ones), zero biases, unit
    BatchNorm scales and running variances, zero running means."""
    rng = np.random.default_rng(seed)
    shapes = nn.meta.unbox(jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args)))

    def draw(kpath, leaf):
        path = [str(getattr(k, "key", k)) for k in kpath]
        shape, name = tuple(leaf.shape), path[-1]
        if name == "kernel" and any(p.startswith("lin") for p in path):
            v = rng.uniform(0.0, 1.0 / shape[0], shape)
        elif name == "kernel":
            v = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
        elif name in ("scale", "var"):
            v = np.ones(shape)
        else:
            v = np.zeros(shape)
        return jnp.asarray(v, leaf.dtype)
    return jax.tree_util.tree_map_with_path(draw, shapes)


def _load(path: str, what: str, command: str) -> dict:
    from common.checkpoint import load_any
    try:
        return load_any(path)
    except (FileNotFoundError, KeyError, UserError) as e:
        raise ConfigError(f"{what} weights {path}: {first_line(e)}; write them with {command} "
                          "(or give no path for a random stand-in, reported as *_stand_in)") from e


class QualityNetworks:
    """The LPIPS and Inception networks of an evaluation, with their weights: converted
    checkpoints (`lpips_checkpoint`, `inception_checkpoint`) or, when a path is empty, a
    random-init stand-in (seed 0) whose metrics are reported as `<name>_stand_in`. A path
    that does not exist is an error here; the weights are read at their first use (a paired
    pass never reads the Inception)."""

    def __init__(self, lpips_net: str = "alex", lpips_checkpoint: str = "", inception_checkpoint: str = "",
                 inception_size: int = inception.FID_SIZE, is_network: str = "fid", is_checkpoint: str = ""):
        if is_network not in IS_NETWORKS:
            raise ConfigError(f"unknown IS network {is_network!r}: {' | '.join(IS_NETWORKS)}")
        self.lpips_net, self.is_network = lpips_net, is_network
        self.lpips = LPIPS(lpips_net)
        self.inception = inception.InceptionV3(size=inception_size)
        self.is_inception = inception.InceptionV3(size=inception_size, blocks="torchvision", num_classes=1000)
        self._lpips_path, self._inception_path, self._is_path = lpips_checkpoint, inception_checkpoint, is_checkpoint
        self.lpips_real, self.inception_real = bool(lpips_checkpoint), bool(inception_checkpoint)
        self.is_real = self.inception_real if is_network == "fid" else bool(is_checkpoint)
        for what, path in (("LPIPS", lpips_checkpoint), ("Inception", inception_checkpoint),
                           ("torchvision Inception", is_checkpoint)):
            if path and not os.path.exists(path):
                raise ConfigError(f"{what} weights {path} do not exist; {self._command(what)} writes them "
                                  "(or give no path for a random stand-in, reported as *_stand_in)")
        if not (self.lpips_real and self.inception_real):
            log.warning("image metrics: %s have random-init stand-in weights (reported as *_stand_in); "
                        "convert the public weights with python -m common.image_metrics",
                        " and ".join(n for n, real in (("LPIPS", self.lpips_real), ("Inception", self.inception_real))
                                     if not real))
        self._lpips_fn = jax.jit(lambda v, a, b: self.lpips.apply(v, a, b))
        self._inception_fn = jax.jit(lambda v, x: self.inception.apply(v, x))
        self._is_fn = jax.jit(lambda v, x: self.is_inception.apply(v, x)["logits"])

    def _command(self, what: str) -> str:
        if what == "LPIPS":
            return (f"python -m common.image_metrics lpips weights/v0.1/{self.lpips_net}.pth TRUNK.pth OUT "
                    f"--net {self.lpips_net}")
        if what.startswith("torchvision"):
            return "python -m common.image_metrics inception inception_v3_google-0cc3c7bd.pth OUT --blocks torchvision"
        return "python -m common.image_metrics inception pt_inception-2015-12-05-6726825d.pth OUT"

    @functools.cached_property
    def lpips_vars(self) -> dict:
        z = jnp.zeros((1, 64, 64, 3))
        return _load(self._lpips_path, "LPIPS", self._command("LPIPS")) if self.lpips_real else \
            stand_in_variables(self.lpips, z, z)

    @functools.cached_property
    def inception_vars(self) -> dict:
        return _load(self._inception_path, "Inception", self._command("Inception")) if self.inception_real else \
            stand_in_variables(self.inception, jnp.zeros((1, 64, 64, 3)))

    @functools.cached_property
    def is_vars(self) -> dict:
        return _load(self._is_path, "torchvision Inception", self._command("torchvision")) if self._is_path else \
            stand_in_variables(self.is_inception, jnp.zeros((1, 64, 64, 3)))

    def is_logits(self, images) -> np.ndarray:
        """The 1000 ImageNet logits of torchvision's Inception (is_network="torchvision")."""
        x = jnp.clip((jnp.asarray(images) + 1.0) * 0.5, 0.0, 1.0)
        return np.asarray(self._is_fn(self.is_vars, x))

    def name(self, metric: str, real: bool) -> str:
        return metric if real else f"{metric}_stand_in"

    def lpips_distance(self, a, b) -> np.ndarray:
        return np.asarray(self._lpips_fn(self.lpips_vars, jnp.asarray(a), jnp.asarray(b)))

    def inception_outputs(self, images) -> dict[str, np.ndarray]:
        """pool3 and logits of images in [-1, 1] (pytorch-fid reads [0, 1])."""
        x = jnp.clip((jnp.asarray(images) + 1.0) * 0.5, 0.0, 1.0)
        return {k: np.asarray(v) for k, v in self._inception_fn(self.inception_vars, x).items()}


class QualityEvaluator:
    """An Evaluator over eval_step outputs holding `fake` and `real` images [B, H, W, 3] in
    [-1, 1] (and `mask` [B], rows with 0 dropped). Paired (`lpips=True`): the mean LPIPS of
    each fake against its real image. Unpaired (`fid_is=True`): FID between the Inception
    pool3 features of all fakes and all reals, and the Inception Score of the fakes
    (`is_splits` parts; is_network "fid": the 1008 logits without the fc bias, as the
    original TF code and torch-fidelity; "torchvision": the softmax of torchvision's
    ImageNet Inception-v3, as inception-score-pytorch, the IS ACGPN reports);
    `fid_method` sqrtm (pytorch-fid) | lowrank.
    Every other output goes to `inner` (e.g. a SumEvaluator), whose metrics are merged."""

    def __init__(self, nets: QualityNetworks, inner=None, lpips: bool = True, fid_is: bool = True,
                 is_splits: int = 10, fid_method: str = "sqrtm"):
        if fid_method not in FID_METHODS:
            raise ValueError(f"unknown FID method {fid_method!r}: {' | '.join(FID_METHODS)}")
        self.nets, self.inner, self.use_lpips, self.use_fid = nets, inner, lpips, fid_is
        self.fid_method = fid_method
        self.is_splits = is_splits
        self._lpips, self._fake, self._real, self._logits = [], [], [], []

    def add(self, outputs):
        outputs = dict(outputs)
        fake, real = np.asarray(outputs.pop("fake")), np.asarray(outputs.pop("real"))
        mask = outputs.pop("mask", None)
        keep = np.ones(len(fake), bool) if mask is None else np.asarray(mask) > 0
        if self.use_lpips:
            self._lpips.append(self.nets.lpips_distance(fake, real)[keep])
        if self.use_fid:
            f, r = self.nets.inception_outputs(fake), self.nets.inception_outputs(real)
            self._fake.append(f["pool3"][keep])
            self._logits.append((f["logits_unbiased"] if self.nets.is_network == "fid"
                                 else self.nets.is_logits(fake))[keep])
            self._real.append(r["pool3"][keep])
        if self.inner is not None:
            self.inner.add(outputs)

    def compute(self):
        out = dict(self.inner.compute()) if self.inner is not None else {}
        n = self.nets
        if self.use_lpips:
            if not self._lpips:
                raise ValueError("the evaluation split produced no batch")
            out[n.name(f"lpips_{n.lpips_net}", n.lpips_real)] = float(np.concatenate(self._lpips).mean())
        if self.use_fid:
            if not self._fake:
                raise ValueError("the evaluation split produced no batch")
            fake = np.concatenate(self._fake)
            out[n.name("fid", n.inception_real)] = fid(fake, np.concatenate(self._real), self.fid_method)
            score, std = inception_score(np.concatenate(self._logits), self.is_splits)
            out[n.name("is", n.is_real)] = score
            out[n.name("is_std", n.is_real)] = std
        return out


# ---------------------------------------------------------------- converters
def _lpips_rules(net: str):
    if net == "alex":
        rules = alexnet.torchvision_rules("params/net")
    else:
        rules = [(src, dst.replace("params/", "params/net/", 1), fn) for src, dst, fn in vgg.torchvision_rules("vgg16")]
    from common.convert import pointwise_conv_kernel
    return rules + [(r"lin(\d)\.model\.\d\.weight", r"params/lin\1/kernel", pointwise_conv_kernel)]


def convert_lpips(state_dicts: Sequence[Mapping[str, np.ndarray]], net: str = "alex") -> dict:
    """The variables of LPIPS(net) from the lpips package's lin-layer file (weights/v0.1/
    {alex,vgg}.pth: lin{k}.model.1.weight) and the trunk's torchvision state_dict
    (features.{i}.*), or one whole LPIPS state_dict (net.slice{s}.{i}.* and lin{k}.*)."""
    from common.convert import NotAModelCheckpoint, check_against, convert_with_rules
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS net {net!r}: {' | '.join(LPIPS_NETS)}")
    merged = {}
    for sd in state_dicts:
        for k, v in sd.items():
            m = re.fullmatch(r"net\.slice\d+\.(\d+)\.(weight|bias)", k)
            k = f"features.{m[1]}.{m[2]}" if m else re.sub(r"^lins\.(\d)", r"lin\1", k)  # ModuleList alias
            merged[k] = v
    if not any(k.startswith("lin") for k in merged):
        raise NotAModelCheckpoint(f"no LPIPS heads (lin0..lin4) in the files: give the lpips package's "
                                  f"weights/v0.1/{net}.pth")
    if not any(k.startswith("features.") for k in merged):
        raise NotAModelCheckpoint("no trunk weights (features.N.weight) in the files: give torchvision's "
                                  + ("alexnet-owt-7be5be79.pth" if net == "alex" else "vgg16-397923af.pth"))
    variables = convert_with_rules(merged, _lpips_rules(net), (r"classifier\..*", r"scaling_layer\..*"))
    z = jnp.zeros((1, 64, 64, 3))
    check_against(variables, nn.meta.unbox(jax.eval_shape(lambda: LPIPS(net).init(jax.random.PRNGKey(0), z, z))))
    return variables


def main(argv: Sequence[str] | None = None) -> str:
    """python -m common.image_metrics lpips LIN.pth BACKBONE.pth OUT [--net alex|vgg]
    python -m common.image_metrics inception pt_inception-2015-12-05-6726825d.pth OUT"""
    from common import convert
    parser = argparse.ArgumentParser(prog="python -m common.image_metrics",
                                     description="Convert the weights of the LPIPS / FID networks.")
    sub = parser.add_subparsers(dest="network", required=True)
    lp = sub.add_parser("lpips", help="LPIPS: the lpips package's lin file + the torchvision trunk")
    lp.add_argument("lin", help="lpips' weights/v0.1/alex.pth (or vgg.pth), or a whole LPIPS state_dict")
    lp.add_argument("backbone", help="torchvision alexnet / vgg16 state_dict (the same file for a whole LPIPS one)")
    lp.add_argument("out_dir", help="directory for the converted orbax checkpoint (new or empty)")
    lp.add_argument("--net", default="alex", choices=sorted(LPIPS_NETS))
    lp.add_argument("--overwrite", action="store_true")
    inc = convert.add_io_arguments(sub.add_parser("inception", help="pytorch-fid's FID Inception weights "
                                                  "(or torchvision's, --blocks torchvision)"),
                                   "pt_inception-2015-12-05-6726825d.pth (or inception_v3_google-0cc3c7bd.pth)")
    inc.add_argument("--blocks", default="fid", choices=("fid", "torchvision"))
    args = parser.parse_args(argv)
    if args.network == "lpips":
        def run():
            sds = [convert.load_state_dict(args.lin)] + ([] if args.backbone == args.lin
                                                         else [convert.load_state_dict(args.backbone)])
            return convert.write(convert_lpips(sds, args.net), args.lin, args.out_dir, args.overwrite)
        return convert.run_cli(run, args.lin)
    return convert.run_cli(lambda: convert.write(
        inception.convert_fid_weights(convert.load_state_dict(args.src), args.blocks),
        args.src, args.out_dir, args.overwrite), args.src)


if __name__ == "__main__":
    main()
