"""Rank every filter of a YOLO classifier (YOLOv5, YOLOv8, YOLO11, YOLO26; or a detector's backbone) and save
the scores.

Usage:
    python classify/rank.py --weights yolov5s-cls.pt --data imagenette160 --criterion hrank --batches 5
    python classify/rank.py --weights yolov5s-cls.pt --data imagenette160 --criterion taylor   # gradient-based
    python classify/rank.py --weights yolov5s.pt --cfg yolov5s-cls.yaml --criterion l1   # detector source

The scores file (default weights/ranks/<weights>-<criterion>.pt) holds plain tensors + metadata and is
reused by `classify/train.py --ranks` so ranking runs once.
"""

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402

from models.allocation import drop_predictor  # noqa: E402
from models.budget import check_reachable, chosen_target, plan_for_target  # noqa: E402
from models.criteria import CRITERIA, DEFAULT_CRITERION, RESIDUAL_MODES, get_criterion  # noqa: E402
from models.latency import check_latency_options  # noqa: E402
from models.ranking import rank_and_save, ranking_model  # noqa: E402
from models.sensitivity import read_sensitivity  # noqa: E402
from models.yolo import cfg_of  # noqa: E402
from utils.cli import (HelpFormatter, check_at_least, check_img_size, check_writable, model_imgsz,  # noqa: E402
                       print_args, run_cli)
from utils.datasets import DEFAULT_DATA  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.log import LOGGER, colorstr  # noqa: E402
from utils.options import (add_batch_size, add_cfg, add_criterion, add_data, add_device, add_imgsz,  # noqa: E402
                           add_seed, add_target_options, add_weights, add_workers)
from utils.paths import WEIGHTS_DIR  # noqa: E402


def default_output(weights, criterion):
    return WEIGHTS_DIR / "ranks" / f"{Path(weights).stem}-{criterion}.pt"


def write_plan(model, scores, output, target, imgsz, sensitivity="", latency_runtime=None, latency_batch=1):
    """For --target-*: allocate widths (from --sensitivity curves, else the scores) and write them as a model YAML
    next to the scores file, ready for classify/train.py --cfg <it> --ranks <scores>."""
    cfg = cfg_of(model)
    plan = plan_for_target(cfg, *target, imgsz, nc=model.nc, drop=drop_predictor(scores, sensitivity or None),
                           device=next(model.parameters()).device, runtime=latency_runtime, batch=latency_batch,
                           cache_dir=Path(output).parent)
    path = Path(output).with_suffix(".yaml")
    plan.save(path, cfg)
    LOGGER.info(f"widths plan saved to {colorstr('bold', path)}: train it with classify/train.py --cfg {path} "
                f"--ranks {output} --weights ...")
    return path


def run(weights="yolov5s-cls.pt", cfg="", data=DEFAULT_DATA, criterion=DEFAULT_CRITERION, batches=5, batch_size=16,
        imgsz=None, device="", workers=8, output="", seed=0, residual="members", target_flops=None, target_params=None,
        target_latency=None, sensitivity="", latency_runtime=None, latency_batch=1):
    """Compute and save per-channel scores; returns the scores file path (with --target-*, also a plan YAML)."""
    target = chosen_target(target_flops, target_params, target_latency)
    latency_runtime, latency_batch = check_latency_options(latency_runtime, latency_batch)
    if sensitivity:  # a missing file or one that is not a sensitivity table fails before any work
        read_sensitivity(sensitivity)
    torch.manual_seed(seed)
    check_at_least("--batch-size", batch_size, 1)
    check_at_least("--workers", workers, 0)
    imgsz = None if imgsz is None else check_img_size(imgsz)
    output = Path(output) if output else default_output(weights, criterion)
    check_writable(output.parent, "--output")
    device = select_device(device, batch_size=batch_size)
    get_criterion(criterion)  # an unknown criterion fails before loading weights
    model = ranking_model(weights, cfg).to(device)
    imgsz = model_imgsz(imgsz, model)
    if target:  # a budget no plan reaches fails now, not after ranking
        check_reachable(cfg_of(model), *target, imgsz, model.nc)
    scores = rank_and_save(model, weights, output, cfg, data, criterion, batches, batch_size, imgsz, device, workers,
                           seed, residual)
    if target:
        write_plan(model, scores, output, target, imgsz, sensitivity, latency_runtime, latency_batch)
    return output


def parse_opt(known=False):
    parser = argparse.ArgumentParser(description="Rank the filters of a YOLO classifier or detector backbone",
                                     formatter_class=HelpFormatter)
    add_weights(parser, "classifier or detector checkpoint")
    add_cfg(parser, "classifier YAML (for a detector source), e.g. yolov5s-cls.yaml")
    add_data(parser, "dataset for data criteria: name or ImageFolder root")
    add_criterion(parser, CRITERIA, DEFAULT_CRITERION,
                  "ranking criterion: " + "; ".join(f"{k}: {c.help}" for k, c in CRITERIA.items()))
    parser.add_argument("--batches", type=int, default=5, help="training batches scored by data criteria")
    add_batch_size(parser, "rank")
    add_imgsz(parser)
    add_device(parser)
    add_workers(parser)
    parser.add_argument("--output", type=str, default="", help="scores file (default weights/ranks/<weights>-<criterion>.pt)")
    add_seed(parser)
    add_target_options(parser, "also allocate widths to this fraction of the unpruned FLOPs (0-1]; writes <output>.yaml",
                       "sensitivity.csv to allocate by (default: the scores)")
    parser.add_argument("--residual", default="members", choices=RESIDUAL_MODES,
                        help="residual streams of data criteria: score each member conv's output (members) or the maps "
                             "after each add (added, as HRankPlus)")
    return parser.parse_known_args()[0] if known else parser.parse_args()


def main(opt):
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
