"""Filter scores of a classifier: the model ranked (a classifier, or a classifier filled with a detector's backbone),
its scores under a criterion (models/criteria.py) on un-augmented training images, and a summary of them.

rank_and_save writes the scores file of classify/rank.py and classify/prune.py; classify/train.py ranks in memory
(score_filters, score_model) when it is given no --ranks file.
"""

from pathlib import Path

import torch
import torch.nn as nn

from models.criteria import DEFAULT_CRITERION, compute_scores, get_criterion
from models.experimental import model_from_checkpoint
from models.io.checkpoints import load_checkpoint
from models.io.ranks import save_scores
from models.prune import load_model
from models.yolo import ClassificationModel, DetectionModel, classifier_yaml, input_norm
from utils.dataloaders import create_classification_dataloader
from utils.datasets import DEFAULT_DATA, check_cls_dataset
from utils.downloads import attempt_download
from utils.log import LOGGER, colorstr


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


def rank_and_save(model, weights, output, cfg="", data=DEFAULT_DATA, criterion=DEFAULT_CRITERION, batches=5,
                  batch_size=16, imgsz=224, device="cpu", workers=8, seed=0, residual="members"):
    """Scores of the ranking model `model` (see ranking_model; read from `weights`), logged as a table and saved to
    `output` with what made them; returns the scores."""
    scores, meta = score_model(model, weights, cfg, data, criterion, batches, batch_size, imgsz, device, workers, seed,
                               residual)
    log_scores(scores, criterion)
    save_scores(output, scores, meta)
    LOGGER.info(f"\n{len(scores)} channel groups ranked by {criterion}; scores saved to {colorstr('bold', output)}")
    return scores
