"""Re-sampling (facebookresearch/classifier-balancing data/ClassAwareSampler.py,
MixedPrioritizedSampler.py, ClassPrioritySampler.py; Megvii-Nanjing/BBN's reversed sampler)
as epoch orders: each function maps (labels, epoch, seed) to the
array of dataset indices read in that epoch, for common.data.pipeline's `order_fn`.

Class c is drawn with probability p_c proportional to n_c^q (q=1 instance-balanced,
q=0 class-balanced, q=1/2 square-root; progressively-balanced interpolates from q=1 to
q=0 over training), then an instance uniformly within the class.
"""
import numpy as np


def class_probabilities(counts, q: float) -> np.ndarray:
    w = np.power(np.asarray(counts, np.float64), q)
    return w / w.sum()


def progressive_probabilities(counts, epoch: int, total_epochs: int) -> np.ndarray:
    t = min(max(epoch / max(total_epochs, 1), 0.0), 1.0)
    counts = np.asarray(counts, np.float64)
    return (1 - t) * counts / counts.sum() + t / len(counts)


def reversed_probabilities(counts) -> np.ndarray:
    """BBN's reversed sampler: p_c proportional to n_max / n_c."""
    counts = np.asarray(counts, np.float64)
    w = counts.max() / counts
    return w / w.sum()


def by_class(labels, num_classes: int) -> list[np.ndarray]:
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == c) for c in range(num_classes)]


def draw(labels, probs, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` indices: a class from `probs`, then a uniform instance of it."""
    members = by_class(labels, len(probs))
    classes = rng.choice(len(probs), size=length, p=probs)
    picks = np.empty(length, np.int64)
    for c in np.unique(classes):
        where = np.flatnonzero(classes == c)
        picks[where] = rng.choice(members[c], size=len(where))
    return picks


def class_aware(labels, num_classes: int, length: int, rng: np.random.Generator, per_class: int = 4):
    """classifier-balancing's ClassAwareSampler: cycle through reshuffled classes; for each,
    emit `per_class` consecutive items of that class's own reshuffled cycle."""
    members = [rng.permutation(m) for m in by_class(labels, num_classes)]
    pos = [0] * num_classes
    out, classes = [], []
    while len(out) < length:
        if not classes:
            classes = list(rng.permutation([c for c in range(num_classes) if len(members[c])]))
        c = classes.pop()
        for _ in range(per_class):
            if pos[c] == len(members[c]):
                members[c], pos[c] = rng.permutation(members[c]), 0
            out.append(members[c][pos[c]])
            pos[c] += 1
    return np.asarray(out[:length])


def epoch_order(kind: str, labels, num_classes: int, epoch: int, seed: int, total_epochs: int = 1,
                stream: int = 0):
    """The indices of one epoch (as many as the dataset has) for sampler `kind`:
    instance | class_balanced | square_root | progressive | class_aware | reversed.
    `stream` > 0 draws an independent sequence (BBN's second stream)."""
    rng = np.random.default_rng([seed, epoch, stream] if stream else [seed, epoch])
    labels = np.asarray(labels)
    n = len(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if kind == "instance":
        return rng.permutation(n)
    if kind == "class_aware":
        return class_aware(labels, num_classes, n, rng)
    probs = {"class_balanced": lambda: class_probabilities(counts, 0.0),
             "square_root": lambda: class_probabilities(counts, 0.5),
             "progressive": lambda: progressive_probabilities(counts, epoch, total_epochs),
             "reversed": lambda: reversed_probabilities(counts)}
    if kind not in probs:
        raise ValueError(f"unknown sampler {kind!r}: instance | {' | '.join(probs)} | class_aware")
    return draw(labels, probs[kind](), n, rng)


class PairedSource:
    """BBN's two data streams through the one-stream pipeline: item a * N + b of this
    random-access source is record a of `source` with record b's image and label added as
    `image_rb` / `label_rb`; `paired_order` yields such codes."""

    def __init__(self, source):
        self.source, self.n = source, len(source)

    def __len__(self):
        return self.n * self.n

    def __getitem__(self, code):
        a, b = divmod(int(code), self.n)
        rb = self.source[b]
        return {**self.source[a], "image_rb": rb["image"], "label_rb": rb["label"]}


def paired_order(kind: str, paired_kind: str, labels, num_classes: int, epoch: int, seed: int,
                 total_epochs: int = 1) -> np.ndarray:
    """One epoch of PairedSource codes: index a from sampler `kind` (BBN: instance), index b
    from an independent draw of `paired_kind` (BBN: reversed)."""
    a = epoch_order(kind, labels, num_classes, epoch, seed, total_epochs)
    b = epoch_order(paired_kind, labels, num_classes, epoch, seed, total_epochs, stream=1)
    return a * len(labels) + b
