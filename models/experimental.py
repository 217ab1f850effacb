"""Loading models from checkpoints: this project's files and upstream YOLOv5 `.pt` files alike."""

import torch
import torch.nn as nn

from models.yolo import ClassificationModel
from utils.checkpoints import CheckpointError, is_project_checkpoint, load_checkpoint
from utils.downloads import attempt_download


def model_from_checkpoint(ckpt, prefer_ema=True):
    """A float32 model from a loaded checkpoint dict (either format); names attached as `.names`."""
    if is_project_checkpoint(ckpt):
        model = ClassificationModel(ckpt["yaml"])
        state = ckpt.get("ema") if prefer_ema and ckpt.get("ema") is not None else ckpt["model"]
        model.load_state_dict(state)
        model.names = list(ckpt.get("names") or model.names)
        return model.float()
    if isinstance(ckpt, dict) and isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        model = (ckpt.get("ema") if prefer_ema and ckpt.get("ema") is not None else ckpt["model"]).float()
    elif isinstance(ckpt, nn.Module):
        model = ckpt.float()
    else:
        raise CheckpointError("checkpoint holds no model: expected this project's format or an upstream YOLOv5 .pt")
    names = getattr(model, "names", None)
    if isinstance(names, dict):  # newer upstream stores {index: name}
        model.names = [names[k] for k in sorted(names)]
    _upgrade_upstream_modules(model)
    return model


def _upgrade_upstream_modules(model):
    """Attributes that older torch/YOLOv5 pickles lack but current modules need."""
    for m in model.modules():
        if isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
        elif isinstance(m, nn.Conv2d) and not hasattr(m, "padding_mode"):
            m.padding_mode = "zeros"


def attempt_load(weights, device=None, fuse=False):
    """Eval-mode float model from a checkpoint path (this project's or upstream YOLOv5's)."""
    ckpt = load_checkpoint(attempt_download(weights), map_location="cpu")
    model = model_from_checkpoint(ckpt)
    if fuse and hasattr(model, "fuse"):
        model.fuse()
    return model.to(device or "cpu").eval()


def builtin_cfg_for(state_dict):
    """The built-in `*-cls.yaml` whose unpruned backbone has exactly these tensor shapes, or None.

    Upstream YOLOv5 classifier checkpoints carry no YAML; their architecture is recognised from the weights.
    """
    from models.yolo import MODELS_DIR

    for path in sorted(MODELS_DIR.glob("yolov5*-cls.yaml")):
        with torch.device("meta"):
            shapes = {k: v.shape for k, v in ClassificationModel(path.name).state_dict().items()}
        backbone = [k for k in shapes if ".linear." not in k]
        if all(k in state_dict and state_dict[k].shape == shapes[k] for k in backbone):
            return path.name
    return None


def cfg_of(model, weights="the model"):
    """The model YAML (a dict with its rates, or a built-in name) that rebuilds `model`'s architecture."""
    yaml_dict = getattr(model, "yaml", None)
    if isinstance(yaml_dict, dict) and "backbone" in yaml_dict:
        return yaml_dict
    name = builtin_cfg_for(model.state_dict())
    if name is None:
        raise ValueError(f"cannot tell the architecture of {weights}: pass --cfg with its model YAML")
    return name
