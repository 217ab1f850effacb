"""Scores files: per-group channel scores + metadata, computed once and reused (weights_only-loadable)."""

from pathlib import Path


from models.io.checkpoints import CheckpointError, load_checkpoint, save_checkpoint

SCORES_FORMAT = "yolov5-prune-scores/1"


def save_scores(path, scores, meta):
    """Write {group: scores} and metadata (criterion, source, data, imgsz, batches, …) atomically."""
    plain_meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in meta.items()}
    payload = {"format": SCORES_FORMAT, "scores": {k: v.detach().cpu().double() for k, v in scores.items()},
               "meta": plain_meta}
    return save_checkpoint(payload, path)


def load_scores(path):
    """(scores, meta) from a scores file; a clear error for anything else."""
    data = load_checkpoint(path)
    if not isinstance(data, dict) or data.get("format") != SCORES_FORMAT:
        raise CheckpointError(f"'{path}' is not a scores file (make one with classify/rank.py)")
    return data["scores"], data["meta"]
