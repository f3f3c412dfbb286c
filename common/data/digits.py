"""`digits`: scikit-learn's bundled 8x8 handwritten digits as a tfds dataset.

Real data that needs no download (it ships inside scikit-learn), used by the README's
demo and the tests. The 1,797 grey 8x8 images are upsampled (bilinear) to 32x32 RGB
uint8 so the ImageNet transforms run on them unchanged. Split: a fixed stratified
80/20 train/validation split. Features are plain Tensors (not tfds Image), so preparing
it needs no TensorFlow.
"""
import numpy as np
import tensorflow_datasets as tfds

SIZE = 32


def _digits_arrays():
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits()
    images = []
    for im in d.images:  # values 0..16
        small = Image.fromarray(np.uint8(np.round(im * 255.0 / 16.0)))
        big = np.asarray(small.resize((SIZE, SIZE), Image.BILINEAR))
        images.append(np.repeat(big[:, :, None], 3, axis=2))
    return np.stack(images), d.target.astype(np.int64)


def _split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = int(round(0.8 * len(idx)))
        train.extend(idx[:cut]), val.extend(idx[cut:])
    return np.sort(np.array(train if split == "train" else val))


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn digits, 32x32x3 uint8, 10 classes; train 1,438 / validation 359."""
    VERSION = tfds.core.Version("1.0.0")
    PREPARES_ITSELF = True            # the data ships with scikit-learn

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(SIZE, SIZE, 3), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        images, labels = _digits_arrays()
        return {s: self._generate_examples(images, labels, _split_indices(labels, s))
                for s in ("train", "validation")}

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}
