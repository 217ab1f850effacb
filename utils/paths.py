"""Project-wide locations and run-folder naming."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # repository root
# Datasets live beside the repository, as in YOLOv5; override with YOLOV5_DATASETS_DIR.
DATASETS_DIR = Path(os.getenv("YOLOV5_DATASETS_DIR", ROOT.parent / "datasets"))
WEIGHTS_DIR = ROOT / "weights"


def increment_path(path, exist_ok=False, sep="", mkdir=False):
    """runs/exp → runs/exp2, exp3, … unless exist_ok (YOLOv5's run-folder rule)."""
    path = Path(path)
    if path.exists() and not exist_ok:
        stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        n = 2
        while Path(f"{stem}{sep}{n}{suffix}").exists():
            n += 1
        path = Path(f"{stem}{sep}{n}{suffix}")
    if mkdir:
        path.mkdir(parents=True, exist_ok=True)
    return path
