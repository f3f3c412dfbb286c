"""Digits-LT (our stand-in, longtail/data.py): every method of the survey's catalogue on a
long-tailed split of scikit-learn's digits, in seconds per run on a CPU.

  python -m common.train --config=configs/longtail/digits_lt.py:balanced_softmax --workdir=DIR
  python -m common.evaluate --config=configs/longtail/digits_lt.py:ce --checkpoint=DIR
Methods (the part after the colon; `,test` appended gives a few-step smoke run, `,demo`
or nothing the full Digits-LT recipe, a minute or two on a CPU; a bare `:test` / `:demo` is CE):
see METHODS. Decoupled stage 2 starts from a stage-1 (CE / mixup) workdir:
  crt, lws, mislas:  --config.init_from=STAGE1  (lws / mislas keep the LWS scales the stage-1
                     checkpoint lacks at their init: init_keep_missing)
  ncm:           python -m longtail.ncm --config=configs/longtail/digits_lt.py:ncm --checkpoint=STAGE1 --out=DIR
SADE's test-time aggregation on a trained `sade` run:
  python -m longtail.sade_tta --config=configs/longtail/digits_lt.py:sade --checkpoint=SADE_DIR --out=DIR
"""
from common.config import PRESETS, classification_config, finalize

# method -> config.longtail overrides (survey hyperparameters where they apply)
METHODS = {
    "ce": {},
    "weighted_ce": {"loss": "weighted_ce"},
    "focal": {"loss": "focal", "focal_gamma": 3.0},
    "class_balanced": {"loss": "class_balanced", "cb_beta": 0.9999},
    "balanced_softmax": {"loss": "balanced_softmax"},
    "logit_adjusted": {"loss": "logit_adjusted", "tau": 1.0},
    "posthoc_la": {"posthoc_tau": 1.0},
    "ldam_drw": {"loss": "ldam", "drw_epoch": 40},              # DRW for the last third of 60 epochs
    "esql": {"loss": "esql", "esql_lambda": 0.05},            # tail = classes under 5% of the data
    "cb_sampling": {"sampler": "class_balanced"},
    "sr_sampling": {"sampler": "square_root"},
    "pb_sampling": {"sampler": "progressive"},
    "class_aware": {"sampler": "class_aware"},
    "mixup": {"mixup_alpha": 0.2},
    "remix": {"mixup_alpha": 1.0, "remix_kappa": 3.0, "remix_tau": 0.5},
    "tau_norm": {"tau_norm": 1.0},
    "crt": {"sampler": "class_aware", "classifier_lr": 1.0},
    # LWS at the recipe's lr (0.025 here) barely moves the scales in Digits-LT's 50 stage-2 steps:
    # seed 0 top-1 / few 66.5 / 25.0 (CE 66.8 / 23.1); --config.optim.lr=0.2 gives 74.8 / 43.1
    "lws": {"sampler": "class_aware", "head": "lws", "classifier_lr": 0.0},
    "ncm": {"head": "ncm", "ncm_distance": "l2"},
    # MiSLAS: stage 1 = `mixup`; stage 2 = class-aware sampler, LWS scales + classifier at 0.05 lr,
    # label-aware smoothing, shifted BN (the frozen backbone's BN statistics re-estimated)
    "mislas": {"sampler": "class_aware", "head": "lws", "classifier_lr": 0.05,
               "loss": "label_aware_smoothing", "las_head": 0.3, "las_tail": 0.0},
    # BBN over-corrects here: the reversed sampler draws the 4 few-shot classes 85% of the time
    # (seed 0: top-1 26.5, the re-balancing branch predicts the rarest class for 98% of test images)
    "bbn": {"paired_sampler": "reversed"},
    "ride": {"loss": "ride", "head": "cosine", "drw_epoch": 40, "ride_diversity": -0.2,
             "ride_reweight_factor": 0.02},
    "sade": {"loss": "sade", "head": "cosine", "sade_tau": 2.0},
    "lade": {"loss": "lade", "lade_weight": 0.1, "lade_remine_lambda": 0.1},
    "ib": {"loss": "ib", "ib_alpha": 1000.0, "ib_start_epoch": 30.0},   # CE warm-up for half the epochs
    # stacked re-balancers over-correct (survey Table 7)
    "bs_posthoc_la": {"loss": "balanced_softmax", "posthoc_tau": 1.0},
    "cb_sampling_bs": {"sampler": "class_balanced", "loss": "balanced_softmax"},
}


def longtail_fields(c):
    import ml_collections
    c.task = "longtail.task:longtail"
    c.longtail = ml_collections.ConfigDict(dict(
        sampler="instance", loss="ce", tau=1.0, posthoc_tau=0.0, tau_norm=0.0, focal_gamma=3.0,
        cb_beta=0.9999, ldam_s=30.0, ldam_max_m=0.5, drw_epoch=-1, esql_lambda=4.3e-4, esql_gamma=0.9,
        mixup_alpha=0.0, remix_kappa=0.0, remix_tau=0.5,
        # heads (longtail/heads.py): linear | cosine | lws | ncm
        head="linear", cosine_scale=30.0, ncm_distance="l2",
        # decoupled stage 2 (a method's `classifier_lr`, see apply_method): freeze_bn keeps the
        # frozen backbone's BN statistics (default: re-estimated, "shifted BN")
        freeze_bn=False,
        las_head=0.3, las_tail=0.0,                                    # MiSLAS label-aware smoothing
        paired_sampler="", bbn_div_epochs=0.0,                         # BBN: second stream, T_div (0: all)
        ride_diversity=-0.2, ride_reweight_factor=0.02, ride_temperature=1.0, sade_tau=2.0,
        lade_weight=0.1, lade_remine_lambda=0.1, ib_alpha=1000.0, ib_start_epoch=100.0,
        many_threshold=100, few_threshold=20, upper_accuracy=0.0))
    return c


# methods whose model is not the plain backbone
MODELS = {"bbn": "bbn_{}", "ride": "multi_expert_{}", "sade": "multi_expert_{}"}


def apply_method(c, overrides: dict):
    """A METHODS row onto the config: `classifier_lr` (decoupled stage 2: only the classifier
    trains, its weights at this multiple of the lr) becomes `optim.groups`, the rest are
    config.longtail fields."""
    from longtail.heads import classifier_only_groups
    overrides = dict(overrides)
    if "classifier_lr" in overrides:
        c.optim.groups = classifier_only_groups(overrides.pop("classifier_lr"))
    for k, v in overrides.items():
        c.longtail[k] = v


def split_arg(arg: str | None, default: str = "ce") -> tuple[str, list[str], str]:
    """'method[,option...][,test|demo]' -> (method, options, preset) for every longtail config;
    a bare preset means the default method."""
    parts = (arg or default).split(",")
    preset = parts.pop() if parts[-1] in PRESETS else ""
    return (parts[0] if parts else default), parts[1:], preset


def get_config(arg=None):
    method, _, preset = split_arg(arg)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    c = longtail_fields(classification_config())
    apply_method(c, METHODS[method])
    c.longtail.many_threshold, c.longtail.few_threshold = 40, 10   # Digits-LT groups: 3 / 3 / 4 classes
    c.model.name = "longtail:" + MODELS.get(method, "{}").format("resnet32")
    c.model.num_classes = 10
    c.model.kwargs.blocks = 1                                      # ResNet-8: seconds per run
    c.data.name, c.data.builder = "digits_lt", "longtail.data"
    c.data.train_split, c.data.eval_split = "train", "test"
    c.data.image_size = 32
    c.data.crop_pct = 1.0
    c.data.mean, c.data.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    c.data.rrc_scale = (0.6, 1.0)
    c.data.hflip = 0.0
    c.data.randaugment = ""
    c.data.random_erasing = 0.0
    c.mixup.prob = 0.0
    c.mixup.label_smoothing = 0.0
    c.batch_size, c.eval_batch_size = 64, 400
    c.num_epochs = 60.0
    c.optim.name = "sgd"                                            # survey's recipe: SGD 0.9, wd 5e-4
    c.optim.lr = 0.1 * 64 / 256
    c.optim.momentum, c.optim.weight_decay = 0.9, 5e-4
    c.schedule.name, c.schedule.warmup_epochs, c.schedule.min_lr = "cosine", 0.0, 0.0
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 50, 1000, 1000
    if method in ("crt", "lws", "mislas"):   # stage 2: 10 epochs on the frozen stage-1 backbone
        c.init_keep_missing = method != "crt"  # the LWS scales are new
        c.num_epochs, c.init_reset_head = 10.0, False
    if preset == "test":
        c.num_train_steps = 4
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 2, 4, 4
    return finalize(c)
