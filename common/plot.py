"""Learning curves from a workdir's metrics.jsonl.

  python -m common.plot WORKDIR [WORKDIR ...] [--out curves.png]

One panel per metric (each windowed `train/...` scalar, lr, and each metric of every eval
pass, e.g. `eval/top1`), one line per workdir, so runs can be compared at a glance. common.train writes
WORKDIR/learning_curves.png at the end of every run.
"""
import argparse
import os

from common.metrics_writer import read_metrics

def plot_runs(workdirs: list[str], out: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {w: read_metrics(w) for w in workdirs}
    present = {k for rows in runs.values() for r in rows for k in r}
    train = sorted(k for k in present if k.startswith("train/"))
    evals = sorted(k for k in present if "/" in k and not k.startswith("train/") and not k.endswith("/count"))
    keys = train + (["lr"] if "lr" in present else []) + evals
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for w, rows in runs.items():
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o" if key in evals else None, ms=3,
                        label=os.path.basename(os.path.normpath(w)))
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    if len(workdirs) > 1:
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdirs", nargs="+")
    p.add_argument("--out", default="", help="PNG path (default: WORKDIR/learning_curves.png)")
    args = p.parse_args(argv)
    out = args.out or os.path.join(args.workdirs[0], "learning_curves.png")
    print(plot_runs(args.workdirs, out))


if __name__ == "__main__":
    main()
