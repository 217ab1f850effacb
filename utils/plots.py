"""Training curves: results.csv → results.png (YOLOv5's layout for classification runs)."""

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
