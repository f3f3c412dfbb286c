"""The survey's comparison on Digits-LT, produced by one command:

  python -m longtail.benchmark [--seeds 0 1 2] [--methods ce balanced_softmax ...] [--out benchmarks]

Every method of configs/longtail/digits_lt.py is trained from scratch per seed (ResNet-8,
60 epochs, SGD; BBN its two-branch and RIDE / SADE their 3-expert variant); post-hoc
methods (post-hoc LA, tau-norm, NCM) re-evaluate the CE model, cRT and LWS retrain only
the classifier of the CE model (decoupled stage 2), MiSLAS's stage 2 starts from the mixup
model. The upper reference
of relative accuracy is A_v: CE trained on the balanced twin (`train_balanced`, the same
number of images) with the same recipe. Writes OUT/longtail.md (mean +- std over seeds)
and OUT/longtail.png. Results accumulate in OUT/longtail_runs.json: running again with
`--methods remix` retrains only what remix needs and rewrites the table with every
method stored (`--fresh` starts over).
"""
import argparse
import contextlib
import io
import json
import os
import tempfile

import numpy as np

# method -> the stage-1 method whose model it re-evaluates (EVAL_ONLY) or retrains (STAGE2)
EVAL_ONLY = {"posthoc_la": "ce", "tau_norm": "ce", "ncm": "ce", "bs_posthoc_la": "balanced_softmax"}
STAGE2 = {"crt": "ce", "lws": "ce", "mislas": "mixup"}
DEFAULT_METHODS = ["ce", "weighted_ce", "focal", "class_balanced", "balanced_softmax", "posthoc_la",
                   "ldam_drw", "esql", "lade", "ib", "cb_sampling", "sr_sampling", "pb_sampling", "class_aware",
                   "mixup", "remix", "mislas", "tau_norm", "crt", "lws", "ncm", "bbn", "ride", "sade", "bs_posthoc_la",
                   "cb_sampling_bs"]
RUNS_FILE = "longtail_runs.json"   # every (seed, method) result, so one method can be rerun alone
COLUMNS = ("top1", "many", "medium", "few", "relative_accuracy")


def _config(method: str, seed: int, **fields):
    from common.config import load_sibling
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    c = load_sibling(os.path.join(root, "configs", "longtail", "x.py"), "digits_lt.py").get_config(method)
    c.seed = seed
    for k, v in fields.items():
        node, *path = k.split(".")
        target = c[node] if path else c
        target[path[-1] if path else node] = v
    return c


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def run_seed(seed: int, methods: list[str], tmp: str) -> dict[str, dict]:
    from common import train
    from common.runner import evaluate_checkpoint
    from longtail import ncm
    balanced = _config("ce", seed)
    balanced.data.train_split = "train_balanced"
    upper = _quiet(train.train_and_evaluate, balanced, os.path.join(tmp, f"bal{seed}"), False)["eval"]["top1"]
    trained: dict[str, tuple[str, dict]] = {}

    def config(method):
        c = _config(method, seed)
        c.longtail.upper_accuracy = upper
        return c

    def stage1(method) -> tuple[str, dict]:
        """(workdir, metrics) of a method trained from scratch, once per seed."""
        if method not in trained:
            workdir = os.path.join(tmp, f"{method}{seed}")
            trained[method] = workdir, _quiet(train.train_and_evaluate, config(method), workdir, False)["eval"]
        return trained[method]

    results = {}
    for method in ["ce"] + [m for m in methods if m != "ce"]:
        c = config(method)
        if method in EVAL_ONLY:
            src = stage1(EVAL_ONLY[method])[0]
            if method == "ncm":
                src = _quiet(ncm.fit, c, src, os.path.join(tmp, f"ncm{seed}"))
            m = _quiet(evaluate_checkpoint, c, src, None, False)["eval"]
        elif method in STAGE2:
            src = stage1(STAGE2[method])[0]
            c.init_from = src                      # lws / mislas: init_keep_missing for the LWS scales
            m = _quiet(train.train_and_evaluate, c, os.path.join(tmp, f"{method}{seed}"), False)["eval"]
        else:
            m = stage1(method)[1]
        if method in methods:
            results[method] = m
        print(f"seed {seed} {method:16s} " + "  ".join(f"{k} {m.get(k, float('nan')):5.1f}" for k in COLUMNS),
              flush=True)
    results["_upper"] = {"top1": upper}
    return results


def write_report(per_seed: list[dict], methods: list[str], out_dir: str, seeds: list[int]) -> str:
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for m in methods:
        vals = np.array([[r[m].get(k, np.nan) for k in COLUMNS] for r in per_seed if m in r])
        rows.append((m, vals.mean(0), vals.std(0)))
    uppers = [r["_upper"]["top1"] for r in per_seed]
    lines = ["# Long-tailed learning on Digits-LT", "",
             "Produced by `python -m longtail.benchmark` (configs/longtail/digits_lt.py): ResNet-8 (CIFAR",
             "ResNet, 1 block per stage; BBN two-branch, RIDE / SADE 3 experts of 3/4 width on it),",
             "60 epochs, SGD 0.9, lr 0.025, batch 64, cosine; stage-2 methods (cRT, LWS, MiSLAS) 10 epochs",
             "on the CE (MiSLAS: mixup) model, NCM / tau-norm / post-hoc LA on the CE model; train counts",
             "[120, 77, 50, 32, 21, 13, 8, 5, 3, 2] (331 images), balanced test 40/class.",
             "Groups by training count: many > 40 (3 classes), medium 10-40 (3), few < 10 (4).",
             f"Relative accuracy = 100 * top1 / A_v, A_v = CE on the balanced twin (33/class): "
             f"{np.mean(uppers):.1f} +- {np.std(uppers):.1f}.",
             f"Mean ± std over {len(seeds)} seeds ({', '.join(str(i) for i in seeds)}).", "",
             "| method | top-1 | many | medium | few | RA |", "|---|---|---|---|---|---|"]
    for m, mean, std in rows:
        lines.append(f"| {m} | " + " | ".join(f"{a:.1f} ± {b:.1f}" for a, b in zip(mean, std)) + " |")
    path = os.path.join(out_dir, "longtail.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n\n![accuracy by method](longtail.png)\n")
    _plot(rows, os.path.join(out_dir, "longtail.png"))
    return path


def _plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r[0] for r in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(names)), 4))
    for i, (k, color) in enumerate((("top1", "C0"), ("many", "C2"), ("few", "C3"))):
        j = COLUMNS.index(k)
        ax.bar(x + (i - 1) * 0.27, [r[1][j] for r in rows], 0.27, yerr=[r[2][j] for r in rows],
               label=k, color=color, capsize=2)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Digits-LT: overall, many-shot and few-shot accuracy (mean ± std over seeds)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_runs(path: str) -> dict[str, dict]:
    """{seed: {method: metrics, "_upper": {"top1": A_v}}} of earlier runs (empty if none)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--fresh", action="store_true", help=f"ignore the results stored in OUT/{RUNS_FILE}")
    args = p.parse_args(argv)
    import logging
    logging.getLogger("absl").setLevel(logging.ERROR)
    os.makedirs(args.out, exist_ok=True)
    runs_path = os.path.join(args.out, RUNS_FILE)
    runs = {} if args.fresh else load_runs(runs_path)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:   # stored and reported after every seed: a cut-off run keeps its table
            fresh = run_seed(seed, args.methods, tmp)
            runs[str(seed)] = {**runs.get(str(seed), {}),
                               **{m: {k: float(v) for k, v in r.items()} for m, r in fresh.items()}}
            with open(runs_path, "w") as f:
                json.dump(runs, f, indent=1, sort_keys=True)
            seeds = sorted(int(k) for k in runs)
            stored = {m for r in runs.values() for m in r}
            methods = [m for m in DEFAULT_METHODS if m in stored] + sorted(stored - set(DEFAULT_METHODS) - {"_upper"})
            path = write_report([runs[str(k)] for k in seeds], methods, args.out, seeds)
    print(path)


if __name__ == "__main__":
    main()
