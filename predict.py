"""Top-level entry point, as in YOLOv5: `python predict.py ...` is `python classify/predict.py ...`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def run(**kwargs):
    """classify.predict.run, imported only when called."""
    from classify.predict import run as predict_run

    return predict_run(**kwargs)


if __name__ == "__main__":
    from classify import predict
    from utils.cli import run_cli

    run_cli(predict.main, predict.parse_opt())
