"""Sensitivity of a trained classifier to pruning: accuracy after pruning one channel group at a time.

Usage:
    python classify/sensitivity.py --weights runs/train-cls/exp/weights/best.pt --data digits --imgsz 32
    python classify/sensitivity.py --weights best.pt --data imagenette160 --imgsz 224 --ranks ranks.pt --images 256

For each channel group and each rate in --rates, the group's lowest-ranked filters are removed (one ranking,
reused for every rate), BatchNorm statistics are re-estimated on --calib-batches training batches, and top-1 is
measured on --images validation images (no fine-tune). Writes sensitivity.csv and sensitivity.png (one curve
per group) to runs/sensitivity/exp*; the csv feeds allocation: classify/train.py --target-flops F --sensitivity csv.
"""

import argparse
import sys
import time
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402

from models.criteria import CRITERIA, DEFAULT_CRITERION, compute_scores, get_criterion  # noqa: E402
from models.experimental import attempt_load, check_classifier  # noqa: E402
from models.io.ranks import load_scores  # noqa: E402
from models.sensitivity import SENSITIVITY_RATES, group_sensitivity  # noqa: E402
from models.yolo import input_norm  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402
from utils.cli import (HelpFormatter, check_at_least, check_img_size, check_writable,  # noqa: E402
                       model_imgsz, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.log import LOGGER, colorstr  # noqa: E402
from utils.options import (add_batch_size, add_criterion, add_data, add_device, add_imgsz,  # noqa: E402
                           add_rank_batches, add_ranks, add_run_folder, add_seed, add_weights, add_workers)
from utils.paths import increment_path  # noqa: E402
from utils.plots import plot_sensitivity  # noqa: E402


def parse_rate_list(text):
    """'0.1,0.3,0.5' → (0.1, 0.3, 0.5); each in (0, 1)."""
    try:
        rates = tuple(float(r) for r in str(text).split(",") if r.strip())
    except ValueError:
        rates = ()
    if not rates or not all(0 < r < 1 for r in rates):
        raise ValueError(f"--rates must be a comma list of rates in (0, 1), e.g. 0.1,0.3,0.5, not '{text}'")
    return rates


def run(weights="yolov5s-cls.pt", data=DEFAULT_DATA, imgsz=None, batch_size=64, device="", workers=8,
        criterion=DEFAULT_CRITERION, ranks="", rank_batches=5, images=512, calib_batches=5,
        rates=",".join(map(str, SENSITIVITY_RATES)), project=ROOT / "runs/sensitivity", name="exp", exist_ok=False,
        seed=0):
    """Write sensitivity.csv and sensitivity.png; returns {'save_dir', 'csv', 'png', 'table', 'seconds'}."""
    rates = parse_rate_list(rates)
    crit = get_criterion(criterion)
    if images < 1 or calib_batches < 1:
        raise ValueError(f"--images and --calib-batches must be at least 1, not {images} and {calib_batches}")
    if ranks and not Path(ranks).is_file():
        raise FileNotFoundError(f"--ranks file '{ranks}' not found (make one with classify/rank.py)")
    check_at_least("--batch-size", batch_size, 1)
    check_at_least("--workers", workers, 0)
    imgsz = None if imgsz is None else check_img_size(imgsz)
    check_writable(Path(project) / name)
    t0 = time.time()
    torch.manual_seed(seed)
    device = select_device(device, batch_size=batch_size)
    model = check_classifier(attempt_load(weights, device=device), weights, "classify/sensitivity.py")
    imgsz = model_imgsz(imgsz, model)
    root = check_cls_dataset(data)
    if ranks:
        scores = load_scores(ranks)[0]
    else:
        loader = None
        if crit.needs_data:
            loader = create_classification_dataloader(root / "train", imgsz=imgsz, batch_size=min(batch_size, 32),
                                                      augment=False, workers=workers, shuffle=True, seed=seed,
                                                      norm=input_norm(model))
        scores = compute_scores(model, criterion, loader, batches=rank_batches, device=device, seed=seed)
    table = group_sensitivity(model, root, scores, imgsz, batch_size, images, calib_batches, rates, workers, seed)
    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok, mkdir=True)
    csv = write_text_atomic(save_dir / "sensitivity.csv", table.to_csv(index=False))
    png = plot_sensitivity(table, save_dir / "sensitivity.png")
    seconds = time.time() - t0
    worst = table.groupby("group")["top1"].min().sort_values()
    LOGGER.info(f"\nunpruned top-1 {table['base_top1'].iloc[0]:.3f} on {images} val images at most; most "
                f"sensitive groups (lowest top-1 at any rate): "
                + ", ".join(f"{g} {v:.3f}" for g, v in worst.head(5).items()))
    LOGGER.info(f"{table['group'].nunique()} groups x {len(rates)} rates in {seconds:.1f} s; results saved to "
                f"{colorstr('bold', save_dir)}")
    return {"save_dir": save_dir, "csv": csv, "png": png, "table": table, "seconds": seconds}


def parse_opt(known=False):
    parser = argparse.ArgumentParser(description="Accuracy after pruning one channel group at a time",
                                     formatter_class=HelpFormatter)
    add_weights(parser, "trained classifier")
    add_data(parser)
    add_imgsz(parser)
    add_batch_size(parser, "sensitivity")
    add_device(parser)
    add_workers(parser)
    add_criterion(parser, CRITERIA, DEFAULT_CRITERION)
    add_ranks(parser)
    add_rank_batches(parser)
    parser.add_argument("--images", type=int, default=512, help="validation images per measurement (a subset: fast)")
    parser.add_argument("--calib-batches", type=int, default=5, help="training batches that re-estimate BatchNorm")
    parser.add_argument("--rates", type=str, default=",".join(map(str, SENSITIVITY_RATES)), help="rates to try")
    add_run_folder(parser, "runs/sensitivity")
    add_seed(parser)
    return parser.parse_known_args()[0] if known else parser.parse_args()


def main(opt):
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
