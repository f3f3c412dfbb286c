"""The base ConfigDict every experiment starts from, and the presets' shared shape.

A config file is `configs/<paper>/<name>.py` with `get_config(arg=None)`: it calls
`base_config()` (or `classification_config()`), sets the paper's recipe, and applies
`arg` presets (`test`: seconds, `demo`: minutes on a CPU). Configs are returned locked,
so a misspelt key (`--config.optim.lr_peak=...`) is an error, not a silent default.
"""
import ml_collections

from common.errors import ConfigError  # noqa: F401  (configs raise it; re-exported)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "classification"         # a registered task: NAME, MODULE:NAME or MODULE (common.tasks)
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.name = ""                  # PACKAGE:VARIANT, e.g. "mypackage:tiny" (common.models)
    c.model.num_classes = 1000
    c.model.dtype = "float32"          # compute dtype; params stay float32
    c.model.kwargs = ml_collections.ConfigDict()  # forwarded to create_model (e.g. drop_path_rate)

    c.data = ml_collections.ConfigDict()
    c.data.name = ""                   # tfds name, e.g. "imagenet2012" or "digits"
    c.data.builder = ""                # module defining the tfds builder if tfds has none, e.g. "common.data.digits"
    c.data.data_dir = ""               # tfds data_dir ("" = tfds default ~/tensorflow_datasets)
    c.data.train_split = "train"
    c.data.eval_split = "validation"
    c.data.num_threads = 2             # grain read threads per process
    c.data.prefetch = 2                # batches prefetched per process
    c.data.num_train_examples = 0      # 0 = len(train split); set to plan a run without the data

    # Schedule lengths: epochs as the papers state them; num_train_steps > 0 overrides.
    c.batch_size = 1024                # global, over all processes and devices
    c.eval_batch_size = 256
    c.num_epochs = 300.0
    c.num_train_steps = -1

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adamw"             # adamw | lamb | sgd
    c.optim.lr = 1e-3                  # peak learning rate (already batch-scaled)
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.momentum = 0.9             # sgd only
    c.optim.nesterov = False           # sgd only
    c.optim.weight_decay = 0.05
    # No decay on leaves with ndim <= 1 (biases, norm scales, layer-scale) nor on leaves
    # whose path contains one of these names (position embeddings, class tokens, ...).
    c.optim.no_decay_names = ("pos_embed", "cls_token", "pos_embedding")
    c.optim.decay_vectors = False      # True: 1-d leaves decay too (PyTorch's default without a no-decay group)
    c.optim.clip_norm = 0.0            # 0 = no clipping
    c.optim.grad_accum_steps = 1
    c.optim.ema_decay = 0.0            # 0 = no EMA of params
    # Parameter groups: ordered rules, the first whose regex matches a parameter's path decides
    # (common.optim.ParamGroups), e.g. ({"pattern": "^backbone/", "lr_mult": 0.1},
    # {"pattern": "^backbone/(stem|layer1_)", "frozen": True}, {"pattern": ".*", "layer_decay": 0.75}).
    c.optim.groups = ()

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = "cosine"         # cosine | linear | step | constant | cosine_by_epoch
    c.schedule.warmup_epochs = 5.0
    c.schedule.warmup_init_lr = 1e-6
    c.schedule.min_lr = 1e-5
    c.schedule.cooldown_epochs = 0.0   # timm's cooldown at min_lr after the decay
    c.schedule.step_epochs = ()        # step schedule: epochs at which lr *= step_factor
    c.schedule.step_factor = 0.1
    c.schedule.warmup_ratio = 0.1      # cosine_by_epoch: warmup starts at this fraction (mmcv's default)

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1})
    # logical axis -> mesh axes. Models name their kernel axes with these logical names.
    c.logical_axis_rules = (
        ("batch", ("data", "fsdp")),
        ("embed", "fsdp"),
        ("mlp", "model"),
        ("heads", "model"),
        ("kv", None),
        ("classes", None),
        ("conv_in", None),
        ("conv_out", "model"),
        ("tokens", None),
    )

    c.log_every_steps = 50
    c.eval_every_steps = 1000          # also evaluated at the end
    c.checkpoint_every_steps = 1000    # also saved at the end and on SIGTERM
    c.keep_checkpoints = 3
    c.init_from = ""                   # a converted/earlier checkpoint to start from
    c.init_reset_head = False          # drop head params whose shape differs (fine-tuning)
    c.init_keep_missing = False        # leaves the checkpoint lacks keep their fresh init (new head params)
    # A workdir remembers the config it was trained with (WORKDIR/config.json); resuming with
    # another config is refused unless the changed keys are listed here, comma-separated
    # ("optim.lr,num_train_steps"; "*" = any). Keys of RESUME_SAFE_KEYS may always change.
    c.allow_resume_with_changes = ""
    return c


def classification_config() -> ml_collections.ConfigDict:
    """base_config plus the DeiT/timm ImageNet augmentation fields."""
    c = base_config()
    c.task = "classification"
    d = c.data
    d.name = "imagenet2012"
    d.image_size = 224
    d.crop_pct = 0.875                 # eval: resize short side to floor(size/crop_pct), center crop
    d.eval_interpolation = "bicubic"
    d.mean = IMAGENET_MEAN
    d.std = IMAGENET_STD
    d.rrc_scale = (0.08, 1.0)
    d.rrc_ratio = (3.0 / 4.0, 4.0 / 3.0)
    d.hflip = 0.5
    d.randaugment = "rand-m9-mstd0.5-inc1"   # timm string; "" = off
    d.color_jitter = 0.0               # torchvision ColorJitter(b=c=s=value, hue=0); 0 = off
    d.random_erasing = 0.25            # probability, 'pixel' mode, count 1
    d.upsample = 1                     # integer nearest upsampling of stored images (digits demo)

    c.mixup = ml_collections.ConfigDict()
    c.mixup.mixup_alpha = 0.8
    c.mixup.cutmix_alpha = 1.0
    c.mixup.prob = 1.0
    c.mixup.switch_prob = 0.5
    c.mixup.label_smoothing = 0.1
    return c


def finalize(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.lock()
    return c


PRESETS = ("test", "demo")


def check_preset(arg: str | None, presets: tuple[str, ...] = PRESETS) -> str | None:
    """The one preset parser of every config file: None/"" (the paper's recipe) or one of
    `presets`, exactly as spelt; anything else is an error, never a silent default."""
    if arg in (None, ""):
        return None
    if arg not in presets:
        raise ConfigError(f"unknown preset {arg!r}: use one of {' | '.join(presets)} (or none for "
                          "the paper's recipe)")
    return arg


# Fields that must be positive integers for a run to make sense (a 0 would divide by zero).
_POSITIVE = ("batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps",
             "checkpoint_every_steps", "keep_checkpoints", "optim.grad_accum_steps")


def validate(c: ml_collections.ConfigDict) -> None:
    """Reject values that make no sense before anything is built, naming the field."""
    flat = flat_config(c)
    for key in _POSITIVE:
        if key in flat and (not isinstance(flat[key], int) or flat[key] < 1):
            raise ConfigError(f"config.{key} must be a positive integer, got {flat[key]!r}")
    steps = flat.get("num_train_steps", -1)
    if steps == 0 or steps < -1:
        raise ConfigError(f"config.num_train_steps must be > 0 (or -1: from num_epochs), got {steps!r}")
    if "num_epochs" in flat and steps == -1 and not flat["num_epochs"] > 0:
        raise ConfigError(f"config.num_epochs must be > 0, got {flat['num_epochs']!r}")


def flat_config(c) -> dict:
    """{'optim.lr': 0.001, ...} with JSON values (tuples become lists), for comparing configs."""
    import json
    tree = json.loads(json.dumps(c.to_dict() if hasattr(c, "to_dict") else c, default=str))

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict) and v:
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v
    return dict(walk(tree, ""))


# Keys that change how a run is executed or logged, not what it computes: a resume may
# change them freely (more data threads, a new data_dir after moving the files, another mesh
# on other hardware, eval/log/checkpoint cadence).
RESUME_SAFE_KEYS = ("data.data_dir", "data.num_threads", "data.prefetch", "eval_batch_size",
                    "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                    "keep_checkpoints", "allow_resume_with_changes", "mesh.*")


def config_changes(old: dict, new: dict) -> dict[str, tuple]:
    """{key: (old value, new value)} of every flat key that differs (missing = '<absent>')."""
    keys = sorted(set(old) | set(new))
    return {k: (old.get(k, "<absent>"), new.get(k, "<absent>")) for k in keys
            if old.get(k, "<absent>") != new.get(k, "<absent>")}


def matches_any(key: str, patterns) -> bool:
    import fnmatch
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def digits_preset(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
    """The shared `test` / `demo` presets of the image classifiers: scikit-learn's digits at
    32x32 (no download), a light augmentation stack, and run lengths of seconds (`test`)
    or a couple of minutes on 2 CPU cores (`demo`). The caller shrinks its model."""
    if check_preset(arg) is None:
        raise ConfigError("digits_preset needs a preset: test | demo")
    c.data.name = "digits"
    c.data.builder = "common.data.digits"
    c.model.num_classes = 10
    c.data.image_size = 32
    c.data.crop_pct = 1.0
    c.data.rrc_scale = (0.35, 1.0)
    c.data.hflip = 0.0                 # digits are not mirror-symmetric
    c.data.randaugment = "rand-m5-mstd0.5-inc1"
    c.data.random_erasing = 0.1
    c.mixup.mixup_alpha, c.mixup.cutmix_alpha, c.mixup.prob = 0.2, 0.0, 0.5
    c.optim.lr = 2e-3
    c.optim.grad_accum_steps = 1
    c.schedule.warmup_init_lr = 1e-5
    c.schedule.min_lr = 1e-5
    c.schedule.cooldown_epochs = 0.0
    c.keep_checkpoints = 2
    if arg == "test":
        c.batch_size, c.eval_batch_size = 32, 128
        c.num_train_steps = 12
        c.schedule.warmup_epochs = 0.1
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 2, 12, 6
    else:
        c.batch_size, c.eval_batch_size = 64, 359
        c.num_epochs = 12.0
        c.num_train_steps = -1
        c.schedule.warmup_epochs = 1.0
        c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 20, 90, 90
    return c


def load_sibling(config_file: str, name: str):
    """Import another config file of the same directory as a module (config files are
    loaded by path, not as a package), e.g. a variant reusing its family's recipe."""
    import os
    return load_file(os.path.join(os.path.dirname(os.path.abspath(config_file)), name),
                     os.path.splitext(name)[0].replace("/", "."))


def load_file(path: str, module_name: str = "_config"):
    """A config file imported as a module from its path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
