"""ImageNet-LT with ResNeXt-50 (32x4d): one config per row of the survey's Tables 4-5.

  python -m common.train --config=configs/longtail/imagenet_lt.py:balanced_softmax --workdir=DIR
  python -m common.train --config=configs/longtail/imagenet_lt.py:ce,90 --workdir=DIR      # 90 epochs
  # decoupled stage 2 on a stage-1 run:
  python -m common.train --config=configs/longtail/imagenet_lt.py:crt --workdir=DIR2 --config.init_from=DIR

  # LWS / MiSLAS stage 2 the same way (their configs keep the new LWS scales at their init):
  python -m common.train --config=configs/longtail/imagenet_lt.py:mislas --workdir=DIR2 \
      --config.init_from=MIXUP_DIR
  # NCM: centroids of the stage-1 features, then evaluate
  python -m longtail.ncm --config=configs/longtail/imagenet_lt.py:ncm --checkpoint=DIR --out=NCM_DIR

Data: tfds `imagenet_lt` (built from the ILSVRC2012 tars in manual_dir); splits train
(115,846) / validation (20,000) / test (50,000). Recipes follow the survey's released
configs (Main-codebase for CE/WS/focal/ESQL/BS/LA/LADE and cRT; Ensemble-codebase for
LDAM-DRW, RIDE and SADE; MiSLAS-codebase for MiSLAS; BBN's paper for BBN). SADE's optional
test-time aggregation: python -m longtail.sade_tta --config=...:sade --checkpoint=DIR --out=TTA_DIR.
Not implemented: RIDE's optional expert-assignment router (the survey's runs do not use it).
"""
from common.config import classification_config, finalize, load_sibling

_digits = load_sibling(__file__, "digits_lt.py")

# survey row -> config.longtail overrides (survey hyperparameters from its released configs)
METHODS = {
    "ce": {}, "weighted_ce": {"loss": "weighted_ce"}, "focal": {"loss": "focal", "focal_gamma": 3.0},
    "esql": {"loss": "esql", "esql_lambda": 4.3e-4, "esql_gamma": 0.9},
    "balanced_softmax": {"loss": "balanced_softmax"}, "logit_adjusted": {"loss": "logit_adjusted", "tau": 1.0},
    "posthoc_la": {"posthoc_tau": 1.0}, "class_balanced": {"loss": "class_balanced", "cb_beta": 0.9999},
    "ldam_drw": {"loss": "ldam", "ldam_s": 30.0, "ldam_max_m": 0.5, "drw_epoch": 160},
    "cb_sampling": {"sampler": "class_balanced"}, "sr_sampling": {"sampler": "square_root"},
    "pb_sampling": {"sampler": "progressive"}, "mixup": {"mixup_alpha": 0.2},
    "remix": {"mixup_alpha": 1.0, "remix_kappa": 3.0, "remix_tau": 0.5},
    "tau_norm": {"tau_norm": 0.7}, "crt": {"sampler": "class_aware", "classifier_lr": 1.0},
    "lws": {"sampler": "class_aware", "head": "lws", "classifier_lr": 0.0},
    "ncm": {"head": "ncm", "ncm_distance": "l2"},          # classifier-balancing default: cl2n + l2
    "lade": {"loss": "lade", "lade_weight": 0.1, "lade_remine_lambda": 0.1},
    # MiSLAS stage 2 (stage 1 = `mixup`): class-aware sampler, classifier at 0.05 x lr + LWS scales,
    # label-aware smoothing 0.3 -> 0.0 (concave), shifted BN
    "mislas": {"sampler": "class_aware", "head": "lws", "classifier_lr": 0.05,
               "loss": "label_aware_smoothing", "las_head": 0.3, "las_tail": 0.0},
    "bbn": {"paired_sampler": "reversed"},
    "ride": {"loss": "ride", "head": "cosine", "cosine_scale": 30.0, "ride_diversity": -0.2,
             "ride_reweight_factor": 0.02, "ldam_s": 30.0, "ldam_max_m": 0.5},
    "sade": {"loss": "sade", "head": "cosine", "cosine_scale": 30.0, "sade_tau": 2.0},
}
# methods whose model is not the plain backbone
MODELS = {"bbn": "bbn_{}", "ride": "multi_expert_{}", "sade": "multi_expert_{}"}


def imagenet_lt(method: str, epochs: int, model: str = "resnext50_32x4d", dataset: str = "imagenet_lt",
                num_classes: int = 1000):
    c = _digits.longtail_fields(classification_config())
    _digits.apply_method(c, METHODS[method])
    c.longtail.many_threshold, c.longtail.few_threshold = 100, 20      # Ensemble test.py groups
    c.model.name, c.model.num_classes = "longtail:" + MODELS.get(method, "{}").format(model), num_classes
    c.data.name = dataset
    c.data.train_split, c.data.eval_split = "train", "test"
    c.data.image_size, c.data.crop_pct = 224, 224 / 256                # resize 256 -> center crop 224
    c.data.eval_interpolation = "bilinear"
    c.data.randaugment, c.data.random_erasing = "", 0.0
    c.data.color_jitter = 0.4                                          # ColorJitter(0.4, 0.4, 0.4, 0)
    c.mixup.prob, c.mixup.label_smoothing = 0.0, 0.0                   # no smoothing in the survey
    c.batch_size = 256                                                 # survey's recipe
    c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.1, 0.9
    c.optim.weight_decay = 5e-4
    c.optim.no_decay_names = ()
    c.num_epochs = float(epochs)
    c.schedule.name, c.schedule.warmup_epochs, c.schedule.min_lr = "cosine", 0.0, 0.0   # Main-codebase
    if method == "ldam_drw":                # Ensemble-codebase: warm-up 5, x0.1 at 120 and 160 (of 200)
        c.schedule.name, c.schedule.warmup_epochs, c.schedule.warmup_init_lr = "step", 5.0, 0.0
        c.schedule.step_epochs = (0.6 * epochs, 0.8 * epochs)
        c.longtail.drw_epoch = int(0.8 * epochs)
    if method in ("crt", "lws"):            # cls_crt.yaml: 10 epochs, StepLR(3, 0.1), class-aware(4)
        c.num_epochs = 10.0
        c.schedule.name, c.schedule.step_epochs = "step", (3.0, 6.0, 9.0)
        c.init_reset_head = False           # survey code warm-starts the head from stage 1
    if method == "mislas":                  # MiSLAS stage 2: 10 epochs, lr 0.1, cosine
        c.num_epochs = 10.0
    c.init_keep_missing = method in ("lws", "mislas")   # stage 2 adds the LWS scales
    if method == "bbn":                     # T_div: 90 -> 100 and 180 -> 200 epochs (BBN code)
        c.longtail.bbn_div_epochs = {90: 100.0, 180: 200.0}.get(epochs, float(epochs))
    if method == "ride":                    # Ensemble-codebase RIDE: B 64, lr 0.025, nesterov, LDAM-DRW steps
        c.batch_size, c.optim.lr, c.optim.nesterov = 64, 0.025, True
        c.schedule.name, c.schedule.warmup_epochs, c.schedule.warmup_init_lr = "step", 5.0, 0.0
        c.schedule.step_epochs = (0.6 * epochs, 0.8 * epochs)
        c.longtail.drw_epoch = int(0.8 * epochs)
    if method == "sade":                    # Ensemble-codebase SADE: cosine, no warm-up, nesterov
        c.optim.nesterov = True
    c.eval_batch_size = 500
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 100, 4520, 1000
    return c


def parse(arg: str | None, extra_methods: tuple[str, ...] = ()):
    """'method[,option...][,test|demo]' of the real-dataset longtail configs -> (method, options,
    stand_in): with a `:test` / `:demo` preset, stand_in is the same method's Digits-LT config
    (no download), else None."""
    method, options, preset = _digits.split_arg(arg)
    if method not in METHODS and method not in extra_methods:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS) + list(extra_methods)}")
    return method, options, (_digits.get_config(f"{method},{preset}") if preset else None)


def get_config(arg=None):
    method, options, stand_in = parse(arg)
    if stand_in:
        return stand_in
    return finalize(imagenet_lt(method, int(options[0]) if options else 200))
