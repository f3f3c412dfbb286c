"""Long-tailed datasets: the Digits-LT stand-in (a tfds builder that prepares itself from
scikit-learn's bundled digits) and the CIFAR-LT selection procedure.

Digits-LT (our stand-in, with the exponential profile of kaidic/LDAM-DRW imbalance_cifar.py):
RandomState(0); per class c = 0..9 shuffle its indices; the first 40
go to `test` (balanced, 400), the next 10 to `validation` (100), the rest form a pool.
`train` takes n_c = int(120 * (1/50)^(c/9)) = [120, 77, 50, 32, 21, 13, 8, 5, 3, 2] from
the pool front (331 images), `train_r100` uses (1/100)^(c/9), and `train_balanced` 33 per
class (the same total; the balanced twin the relative-accuracy metric needs). Images are
x4 nearest-upsampled to 32x32, 3 channels, uint8 (0..16 scaled to 0..255).
"""
import numpy as np
import tensorflow_datasets as tfds


N_MAX, PER_TEST, PER_VAL = 120, 40, 10


def lt_counts(n_max: int, num_classes: int, imbalance: float) -> list[int]:
    """n_c = int(n_max * (1/imbalance)^(c/(C-1))), float64, truncated (kaidic/LDAM-DRW)."""
    return [int(n_max * (1.0 / imbalance) ** (c / (num_classes - 1))) for c in range(num_classes)]


def cifar_lt_indices(labels: np.ndarray, num_classes: int, imbalance: float) -> np.ndarray:
    """kaidic/LDAM-DRW imbalance_cifar.py: seed the legacy RNG with 0 once, then per class in
    label order shuffle its indices (original training order) and keep the first n_c."""
    n_max = int(np.sum(labels == 0))
    rng = np.random.RandomState(0)
    keep = []
    for c, n in enumerate(lt_counts(n_max, num_classes, imbalance)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        keep.extend(idx[:n])
    return np.asarray(keep)


def digits_lt_splits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    labels = load_digits().target
    rng = np.random.RandomState(0)
    splits = {k: [] for k in ("test", "validation", "train", "train_r100", "train_balanced")}
    lt, lt100 = lt_counts(N_MAX, 10, 50), lt_counts(N_MAX, 10, 100)
    balanced = sum(lt) // 10
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        splits["test"].extend(idx[:PER_TEST])
        splits["validation"].extend(idx[PER_TEST:PER_TEST + PER_VAL])
        pool = idx[PER_TEST + PER_VAL:]
        splits["train"].extend(pool[:lt[c]])
        splits["train_r100"].extend(pool[:lt100[c]])
        splits["train_balanced"].extend(pool[:balanced])
    return {k: np.asarray(v) for k, v in splits.items()}


def _images():
    from sklearn.datasets import load_digits
    d = load_digits()
    big = np.repeat(np.repeat(d.images, 4, axis=1), 4, axis=2)              # x4 nearest
    img = np.clip(np.round(big * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1), d.target.astype(np.int64)


class DigitsLt(tfds.core.GeneratorBasedBuilder):
    """Digits-LT: a long-tailed split of scikit-learn's digits (see module docstring)."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True            # the data ships with scikit-learn

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10)}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        images, labels = _images()
        return {name: self._generate_examples(images, labels, idx) for name, idx in digits_lt_splits().items()}

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}



class CifarLt(tfds.core.GeneratorBasedBuilder):
    """CIFAR-10/100-LT (ratios 10, 50, 100) selected from tfds `cifar10` / `cifar100` train by
    `cifar_lt_indices`, in the original CIFAR order recovered from the `id` feature
    ("train_NNNNN"); the test split is the full balanced test set."""
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"{base}_{ratio}") for base in ("cifar10", "cifar100")
                       for ratio in (10, 50, 100)]

    def _info(self):
        base = self.builder_config.name.split("_")[0]
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=100 if base == "cifar100" else 10)}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        base, ratio = self.builder_config.name.split("_")
        train = tfds.data_source(base, split="train", data_dir=self.data_dir_root)
        order = np.argsort([int(str(ex["id"]).split("_")[-1].strip("'")) for ex in train])
        labels = np.asarray([int(train[int(i)]["label"]) for i in order])
        keep = order[cifar_lt_indices(labels, 100 if base == "cifar100" else 10, float(ratio))]
        test = tfds.data_source(base, split="test", data_dir=self.data_dir_root)
        return {"train": self._generate_examples(train, keep), "test": self._generate_examples(test, range(len(test)))}

    def _generate_examples(self, source, indices):
        for i in indices:
            ex = source[int(i)]
            yield int(i), {"image": np.asarray(ex["image"], np.uint8), "label": int(ex["label"])}
