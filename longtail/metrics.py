"""The survey's evaluation (Vanint/Awesome-LongTailed-Learning: Main-codebase utils.py shot_acc,
Ensemble-codebase test.py): top-1, many/medium/few-shot accuracy as unweighted
means of per-class recall over groups defined by *training* counts, and relative accuracy
RA = 100 * A_t / A_u with the upper reference UA = max(A_v, A_b) (the survey's Tables 4-5)."""
import numpy as np


def shot_groups(train_counts, many: int = 100, few: int = 20) -> dict[str, np.ndarray]:
    """Boolean class masks: many n > `many`, medium few <= n <= many, few n < `few`."""
    n = np.asarray(train_counts)
    return {"many": n > many, "medium": (n >= few) & (n <= many), "few": n < few}


def per_class_recall(correct, count) -> np.ndarray:
    correct, count = np.asarray(correct, np.float64), np.asarray(count, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, correct / np.maximum(count, 1), np.nan)


def group_accuracy(recall, mask) -> float:
    """Mean per-class recall of a group, in %; NaN for an empty group (CIFAR-10-LT has no few)."""
    sel = np.asarray(recall)[np.asarray(mask, bool)]
    return float(100.0 * np.nanmean(sel)) if sel.size else float("nan")


def relative_accuracy(accuracy: float, upper: float) -> float:
    return 100.0 * accuracy / upper


def upper_reference(acc_vanilla_balanced: float, acc_method_balanced: float) -> float:
    return max(acc_vanilla_balanced, acc_method_balanced)


def longtail_report(correct, count, train_counts, many: int, few: int, upper: float | None = None) -> dict:
    recall = per_class_recall(correct, count)
    top1 = 100.0 * float(np.sum(correct)) / max(float(np.sum(count)), 1.0)
    out = {"top1": top1, **{k: group_accuracy(recall, m) for k, m in shot_groups(train_counts, many, few).items()}}
    if upper:
        out["relative_accuracy"] = relative_accuracy(top1, upper)
    return out
