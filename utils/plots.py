"""Plots: training curves (results.csv → results.png, YOLOv5's layout), sensitivity curves, Pareto fronts."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from utils.log import LOGGER  # noqa: E402


def plot_results(file="runs/train-cls/exp/results.csv", dir=""):
    """One panel per results.csv column after `epoch` (losses, accuracies, lr); saves results.png beside it.

    Several results.csv files can be overlaid by passing dir: every results*.csv in it is drawn.
    """
    save_dir = Path(dir) if dir else Path(file).parent
    files = sorted(save_dir.glob("results*.csv")) if dir else [Path(file)]
    if not files:
        raise FileNotFoundError(f"no results*.csv in {save_dir.resolve()}")
    fig, ax = None, None
    for f in files:
        data = pd.read_csv(f)
        columns = [c.strip() for c in data.columns]  # tolerates YOLOv5's space-padded csv too
        x = data.values[:, 0]
        if fig is None:
            n = len(columns) - 1
            fig, ax = plt.subplots(1, n, figsize=(3.2 * n, 3), tight_layout=True)
            ax = [ax] if n == 1 else list(ax)
        for i, name in enumerate(columns[1:]):
            y = data.values[:, i + 1].astype("float")
            ax[i].plot(x, y, marker=".", label=f.stem, linewidth=2, markersize=8)
            ax[i].set_title(name, fontsize=12)
    if len(files) > 1:
        ax[0].legend()
    out = save_dir / "results.png"
    fig.savefig(out, dpi=200)
    plt.close(fig)
    LOGGER.debug(f"saved {out}")
    return out


def plot_sensitivity(table, path):
    """One curve per group: top-1 against the pruned rate."""
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=100)
    cmap = plt.get_cmap("viridis")
    names = list(dict.fromkeys(table["group"]))
    for i, g in enumerate(names):
        rows = table[table["group"] == g]
        ax.plot([0.0, *rows["rate"]], [table["base_top1"].iloc[0], *rows["top1"]], marker=".", lw=1,
                color=cmap(i / max(len(names) - 1, 1)), label=g)
    ax.set_xlabel("rate (fraction of the group's filters pruned, alone)")
    ax.set_ylabel("top-1 (BN recalibrated, no fine-tune)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)  # called only by CLIs: a file, no display
    plt.close(fig)
    return path


def plot_pareto(table, path):
    """Top-1 against FLOPs fraction, one line per method (columns method, flops, top1_mean, top1_std)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for method, rows in table.groupby("method", sort=False):
        rows = rows.sort_values("flops")
        ax.errorbar(rows["flops"], rows["top1_mean"], yerr=rows["top1_std"], marker="o", capsize=3, label=method)
    ax.set_xlabel("FLOPs (fraction of the unpruned model)")
    ax.set_ylabel("top-1 after fine-tune")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
