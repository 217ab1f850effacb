"""Top-level entry point, as in YOLOv5: `python train.py ...` (or `torchrun ... train.py ...`) is classify/train.py."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def run(**kwargs):
    """classify.train.run, imported only when called."""
    from classify.train import run as train_run

    return train_run(**kwargs)


if __name__ == "__main__":
    from classify import train
    from utils.cli import run_cli

    run_cli(train.main, train.parse_opt())
