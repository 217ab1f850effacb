"""Training hyperparameters (--hyp): augmentation and loss settings read from a YAML, checked, with defaults.

data/hyps/hyp.cls.yaml holds the defaults (YOLOv5's); a user file may give any subset of its keys.
"""

from pathlib import Path

import yaml

from utils.atomic import write_text_atomic
from utils.paths import ROOT

DEFAULT_HYP = ROOT / "data" / "hyps" / "hyp.cls.yaml"


def _probability(key, v):
    if not 0 <= v <= 1:
        raise ValueError(f"--hyp {key}: {v} is a probability and must be in [0, 1]")


def _scale(key, v):
    if len(v) != 2 or not 0 < v[0] <= v[1] <= 1:
        raise ValueError(f"--hyp {key}: {v} must be [min, max] area fractions with 0 < min <= max <= 1")


def _jitter(key, v):
    if not 0 <= v <= 1:  # beyond 1 the lower factor clips at 0: black or grey images
        raise ValueError(f"--hyp {key}: {v} must be in [0, 1]")


def _smoothing(key, v):
    if not 0 <= v < 1:
        raise ValueError(f"--hyp {key}: {v} must be in [0, 1)")


# key: (type of the value, range check)
CHECKS = {"scale": (list, _scale), "fliplr": (float, _probability), "flipud": (float, _probability),
          "jitter": (float, _jitter), "label_smoothing": (float, _smoothing), "mixup": (float, _probability)}


def _read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--hyp file '{path}' not found (see {DEFAULT_HYP.relative_to(ROOT)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"--hyp {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--hyp {path} must be a mapping of settings (key: value), not {type(data).__name__}")
    return data


def _number(key, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"--hyp {key}: expected a number, not {v!r}")
    return float(v)


def check_hyp(values, source="--hyp"):
    """The complete, checked settings: the defaults updated with `values`; an unknown key or a value out of
    range is a one-line ValueError."""
    unknown = sorted(set(values) - set(CHECKS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(CHECKS)}")
    hyp = {**_read_yaml(DEFAULT_HYP), **values}
    for key, (kind, check) in CHECKS.items():
        v = hyp[key]
        if kind is list:
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"--hyp {key}: expected [min, max], not {v!r}")
            v = [_number(key, x) for x in v]
        else:
            v = _number(key, v)
        check(key, v)
        hyp[key] = v
    return hyp


def load_hyp(hyp=None):
    """Settings from a YAML path, a dict (e.g. a checkpoint's), or None/'' for the defaults."""
    if isinstance(hyp, dict):
        return check_hyp(hyp)
    return check_hyp(_read_yaml(hyp) if hyp else {}, source=f"--hyp {hyp}" if hyp else "--hyp")


def save_hyp(hyp, path):
    """The settings a run used, as YAML (atomic), readable again by --hyp."""
    return write_text_atomic(path, yaml.safe_dump(hyp, sort_keys=False))


def augmentation_args(hyp):
    """Keyword arguments of utils.augmentations.classify_train_transforms for these settings."""
    return {"scale": tuple(hyp["scale"]), "hflip": hyp["fliplr"], "vflip": hyp["flipud"], "jitter": hyp["jitter"]}
