"""Checkpoint I/O: atomic saves, and loads that never run code from the file.

This project's files hold only plain containers and tensors, so they load with
`torch.load(weights_only=True)`. Upstream YOLOv5 and ultralytics (YOLOv8/YOLO11/YOLO26) `.pt` files pickle whole
models; they go through the same weights-only unpickler with an allowlist of the known module classes added, each
mapped onto this project's class of the same layout: a pickle that names anything else (os.system, eval,
builtins.exec, an ultralytics block this project lacks, …) is refused before anything in it is called.
"""

import os
import pickle
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

from models import yolo
from models.specs import pickled_globals
from utils import augmentations
from utils.atomic import atomic_path
from utils.cli import UserError

FORMAT = "yolov5-prune/1"  # marks this project's checkpoint dicts


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, corrupt or of an unexpected kind (a user error: reported as one line)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle references something outside the allowlist."""


# The torch.nn classes YOLOv5 models (v5.0-v7.0, detection and classification) are built from.
TORCH_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.Sigmoid,
                 nn.Identity, nn.Sequential, nn.ModuleList, nn.MaxPool2d, nn.Upsample, nn.AdaptiveAvgPool2d,
                 nn.Dropout, nn.Linear, nn.Flatten)


def _numpy_globals():
    """numpy reconstructors under both their numpy-1 and numpy-2 pickle names (upstream stores some arrays)."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    items = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    items += [(core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
              (core.multiarray.scalar, "numpy.core.multiarray.scalar")]
    items += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "uint8", "bool")]
    return items


def allowed_globals(torchvision=True):
    """Everything an upstream YOLOv5 or ultralytics classifier/detector checkpoint may name, and nothing else: the
    block classes under the names their specs give (models/specs.py), the model classes, and the torch, numpy and
    torchvision types such files hold. torchvision=False leaves out torchvision's transforms (upstream YOLOv5
    pickles its preprocessing with them): importing torchvision costs ~3 s, and this project's own checkpoints never
    name it."""
    import pathlib

    models = [yolo.ClassificationModel, yolo.DetectionModel, (yolo.DetectionModel, "models.yolo.Model"),
              augmentations.CenterCrop, augmentations.ToTensor]
    transforms = []
    if torchvision:
        import torchvision.transforms as T
        from torchvision.transforms import InterpolationMode

        transforms = [T.Compose, T.Normalize, T.Resize, T.CenterCrop, T.ToTensor, InterpolationMode]
    paths = [pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath]
    return (pickled_globals() + models + transforms + paths + list(TORCH_MODULES) + _numpy_globals()
            + ultralytics_globals())


# torch.nn classes found only in ultralytics' segmentation (Proto's upsampling) and YOLO26 pose (RealNVP) heads.
ULTRALYTICS_TORCH_MODULES = (nn.ConvTranspose2d, nn.Tanh)


def ultralytics_globals():
    """(this project's class, ultralytics' pickled name) for ultralytics' model classes; its blocks and heads come
    from their specs (pickled_globals). Every detector task loads as a DetectionModel, a source of backbone weights. A
    training checkpoint's model may carry its arguments as ultralytics' IterableSimpleNamespace (in
    ultralytics.yolo.utils before 8.1): a plain SimpleNamespace holds them.
    """
    from types import SimpleNamespace

    tasks = {"ClassificationModel": yolo.ClassificationModel, **dict.fromkeys(
        ("DetectionModel", "SegmentationModel", "PoseModel", "OBBModel"), yolo.DetectionModel)}
    pairs = [(cls, f"ultralytics.nn.tasks.{name}") for name, cls in tasks.items()]
    pairs += [(SimpleNamespace, f"ultralytics.{m}.IterableSimpleNamespace") for m in ("utils", "yolo.utils")]
    return pairs + list(ULTRALYTICS_TORCH_MODULES)


@contextmanager
def project_globals(torchvision=True):
    """Exactly this project's allowlist while a file loads. Other libraries may register globals process-wide
    (ultralytics adds its own classes when it loads a file): those must neither widen what a load accepts nor map
    ultralytics' names onto ultralytics' classes instead of this project's."""
    others = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with torch.serialization.safe_globals(allowed_globals(torchvision)):
            yield
    finally:
        torch.serialization.add_safe_globals(others)


def _global_name(item):
    """The 'module.name' string torch's unpickler uses for an allowlist entry (an object or (object, name))."""
    return item[1] if isinstance(item, tuple) else f"{item.__module__}.{item.__qualname__}"


def _refusal(path):
    """The error for a file torch's weights-only unpickler refused: name the first global that is not allowed."""
    try:
        with project_globals():
            names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint (legacy format, or not torch at all): nothing to name
        names = []
    if not names:
        return CheckpointError(f"'{path}' is not a readable PyTorch checkpoint (corrupt, truncated, or an unsupported "
                               f"pickle)")
    name = names[0]
    if name.startswith("ultralytics."):
        return UnsafeCheckpointError(
            f"cannot load '{path}': it needs ultralytics' {name}, which this project does not implement (only "
            f"YOLOv8/YOLO11/YOLO26 classifiers and detector backbones are supported); nothing in the file was run")
    if name.startswith(("models.", "utils.")):  # a YOLOv5 class this project does not define
        return UnsafeCheckpointError(
            f"cannot load '{path}': it needs YOLOv5's {name}, which this project does not implement (a checkpoint "
            f"from another YOLOv5 version or architecture?); nothing in the file was run")
    return UnsafeCheckpointError(
        f"refusing to load '{path}': it references '{name}', which is not a known YOLOv5/ultralytics model class or "
        f"tensor type; nothing in the file was run")


def load_checkpoint(path, map_location="cpu"):
    """Load any supported checkpoint without executing code from it. Returns what the file holds."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"'{path}' is empty (0 bytes): not a PyTorch checkpoint")
    try:
        try:  # first without torchvision's transforms, which only upstream YOLOv5 files name
            with project_globals(torchvision=False):
                return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            with project_globals():
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise _refusal(path) from None
    except Exception as e:  # a file that is not a checkpoint fails in torch.load with any type (KeyError, EOFError, ...)
        detail = f": {next(iter(str(e).splitlines()), '')}" if isinstance(e, (RuntimeError, OSError)) else ""
        raise CheckpointError(f"'{path}' is not a readable PyTorch checkpoint (corrupt, truncated or not a .pt "
                              f"file){detail}") from None


def save_checkpoint(ckpt, path):
    """Write ckpt to path atomically: a temp file in the same folder, then a rename.

    A crash or kill mid-save leaves the previous file intact, never a truncated one.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(ckpt, f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def is_project_checkpoint(ckpt):
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def checkpoint_dict(model, names=None, **fields):
    """This project's checkpoint: the YAML (with rates) rebuilds the architecture, state dicts fill it."""
    from datetime import datetime

    return {"format": FORMAT, "yaml": model.yaml, "nc": model.nc, "names": list(names or model.names),
            "model": float_state_dict(model), "date": datetime.now().isoformat(timespec="seconds"), **fields}


def float_state_dict(model):
    """A detached state dict with floating tensors in float32 (checkpoints hold fp32 whatever the training dtype)."""
    return {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in model.state_dict().items()}


def to_cpu(obj):
    """obj with every tensor in it on the CPU, so a checkpoint written on a GPU loads anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
