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
import torch.nn as nn  # noqa: E402
import yaml  # noqa: E402

from models.budget import (check_reachable, chosen_target, drop_predictor, plan_for_target,  # noqa: E402
                           planned_yaml, read_sensitivity)
from models.criteria import CRITERIA, DEFAULT_CRITERION, RESIDUAL_MODES, compute_scores, get_criterion  # noqa: E402
from models.experimental import model_from_checkpoint  # noqa: E402
from models.io.checkpoints import load_checkpoint  # noqa: E402
from models.io.ranks import save_scores  # noqa: E402
from models.latency import check_latency_options  # noqa: E402
from models.prune import load_model  # noqa: E402
from models.yolo import ClassificationModel, DetectionModel, cfg_of, classifier_yaml, input_norm  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402
from utils.cli import (WORKERS_HELP, HelpFormatter, add_target_options, check_at_least, check_img_size,  # noqa: E402
                       check_writable, model_imgsz, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.downloads import attempt_download  # noqa: E402
from utils.log import LOGGER, colorstr  # noqa: E402
from utils.paths import WEIGHTS_DIR  # noqa: E402


def ranking_model(weights, cfg=None):
    """The classifier whose filters are ranked: a classifier source itself (pruned or not), or, for a detector
    source, cfg (a classifier YAML, default YOLOv5's cut at layer 10) filled with the detector's backbone.
    `weights` is a checkpoint path, or a model already read from one (so a command reads its --weights once)."""
    if isinstance(weights, nn.Module):
        source = weights
    else:
        source = model_from_checkpoint(load_checkpoint(attempt_download(weights)))
    if not isinstance(source, DetectionModel):
        return source.float()
    LOGGER.warning("rank: the source is a detector; the Classify head has no trained weights, so its ranks "
                   "reflect its initialisation")
    if cfg:
        return load_model(ClassificationModel(classifier_yaml(cfg), rate=0.0), source).float()
    return ClassificationModel(model=source, nc=1000, cutoff=10).float()


def default_output(weights, criterion):
    return WEIGHTS_DIR / "ranks" / f"{Path(weights).stem}-{criterion}.pt"


def score_filters(weights, cfg="", data=DEFAULT_DATA, criterion=DEFAULT_CRITERION, batches=5, batch_size=16,
                  imgsz=224, device="cpu", workers=8, seed=0, residual="members"):
    """(scores, meta): rank the filters of the unpruned model of `weights` on un-augmented training images."""
    get_criterion(criterion)  # an unknown criterion fails before loading weights or data
    if batches < 1:
        raise ValueError(f"--batches must be at least 1, not {batches}")
    return score_model(ranking_model(weights, cfg).to(device), weights, cfg, data, criterion, batches, batch_size,
                       imgsz, device, workers, seed, residual)


def score_model(model, weights, cfg="", data=DEFAULT_DATA, criterion=DEFAULT_CRITERION, batches=5, batch_size=16,
                imgsz=224, device="cpu", workers=8, seed=0, residual="members"):
    """(scores, meta) of an already loaded ranking model (see score_filters)."""
    needs_data = get_criterion(criterion).needs_data
    if batches < 1:
        raise ValueError(f"--batches must be at least 1, not {batches}")
    loader, data_root = None, ""
    if needs_data:
        data_root = check_cls_dataset(data)
        loader = create_classification_dataloader(Path(data_root) / "train", imgsz=imgsz, batch_size=batch_size,
                                                  augment=False, workers=workers, shuffle=True, seed=seed,
                                                  norm=input_norm(model))
    scores = compute_scores(model, criterion, loader, batches=batches, device=device, seed=seed, residual=residual)
    meta = {"criterion": criterion, "source": str(weights), "cfg": str(cfg.get("yaml_file", "") if isinstance(cfg, dict) else cfg or ""),
            "data": str(data_root or data), "imgsz": imgsz if needs_data else None,
            "batches": batches if needs_data else None, "batch_size": batch_size, "seed": seed,
            "residual": residual if needs_data else None}
    return scores, meta


def tied_fraction(s):
    """Fraction of a group's channels whose score equals another channel's (those fall back to index order)."""
    _, counts = torch.unique(s, return_counts=True)
    return counts[counts > 1].sum().item() / len(s)


def log_scores(scores, criterion):
    """A table per group: channels, the spread of scores over them, and how many tie."""
    LOGGER.info(f"\n{criterion} scores per channel group (over its channels: lowest, mean, highest; tied = share of "
                f"channels whose score equals another's)")
    LOGGER.info(f"{'group':<22}{'channels':>9}{'lowest':>11}{'mean':>11}{'highest':>11}{'tied':>7}")
    for name, s in scores.items():
        LOGGER.info(f"{name:<22}{len(s):>9}{s.min():>11.4g}{s.mean():>11.4g}{s.max():>11.4g}{tied_fraction(s):>7.0%}")


def write_plan(model, scores, output, target, imgsz, sensitivity="", latency_runtime=None, latency_batch=1):
    """For --target-*: allocate widths (from --sensitivity curves, else the scores) and write them as a model YAML
    next to the scores file, ready for classify/train.py --cfg <it> --ranks <scores>."""
    cfg = cfg_of(model)
    widths = plan_for_target(cfg, *target, imgsz, nc=model.nc, drop=drop_predictor(scores, sensitivity or None),
                             device=next(model.parameters()).device, runtime=latency_runtime, batch=latency_batch,
                             cache_dir=Path(output).parent)
    path = Path(output).with_suffix(".yaml")
    write_text_atomic(path, yaml.safe_dump(planned_yaml(cfg, widths), sort_keys=False))
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
    scores, meta = score_model(model, weights, cfg, data, criterion, batches, batch_size, imgsz, device, workers, seed,
                               residual)
    log_scores(scores, criterion)
    save_scores(output, scores, meta)
    LOGGER.info(f"\n{len(scores)} channel groups ranked by {criterion}; scores saved to {colorstr('bold', output)}")
    if target:
        write_plan(model, scores, output, target, imgsz, sensitivity, latency_runtime, latency_batch)
    return output


def parse_opt(known=False):
    parser = argparse.ArgumentParser(description="Rank the filters of a YOLO classifier or detector backbone",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--weights", type=str, default="yolov5s-cls.pt", help="classifier or detector checkpoint")
    parser.add_argument("--cfg", type=str, default="", help="classifier YAML (for a detector source), e.g. yolov5s-cls.yaml")
    parser.add_argument("--data", type=str, default=DEFAULT_DATA, help="dataset for data criteria: name or ImageFolder root")
    parser.add_argument("--criterion", type=str, default=DEFAULT_CRITERION, choices=CRITERIA,
                        help="ranking criterion: " + "; ".join(f"{k}: {c.help}" for k, c in CRITERIA.items()))
    parser.add_argument("--batches", type=int, default=5, help="training batches scored by data criteria")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=None,
                        help="image size (pixels); default: the model's training size, else 224")
    parser.add_argument("--device", default="", help="cuda device, i.e. 0 or cpu")
    parser.add_argument("--workers", type=int, default=8, help=WORKERS_HELP)
    parser.add_argument("--output", type=str, default="", help="scores file (default weights/ranks/<weights>-<criterion>.pt)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data order and the random criterion")
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
