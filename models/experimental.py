"""Loading models from checkpoints: this project's files, upstream YOLOv5 and ultralytics `.pt` files alike."""

import torch.nn as nn

from models.io.checkpoints import CheckpointError, is_project_checkpoint, load_checkpoint
from models.io.ultralytics_export import NORMALIZATION_KEY, project_state_dict
from models.yolo import ClassificationModel, is_ultralytics
from utils.downloads import attempt_download

TORCH_BN_EPS = 1e-5  # BatchNorm2d's default, which ultralytics' classifiers keep


def model_from_checkpoint(ckpt, prefer_ema=True):
    """A float32 model from a loaded checkpoint dict (any supported format); names attached as a list `.names`.

    An ultralytics classifier (YOLOv8/YOLO11/YOLO26 -cls) comes back as this project's ClassificationModel rebuilt from
    the YAML it carries. Its forward returns logits in eval mode too, where ultralytics' returns (probabilities,
    logits): softmax(model(x)) is ultralytics' first output. An ultralytics detector comes back as the unpickled
    model (a DetectionModel whose head is a DetectionHead placeholder): a source of backbone weights for load_model.
    """
    model = _model_in(ckpt, prefer_ema)
    if isinstance(model, ClassificationModel):
        model.trained_imgsz = trained_imgsz(ckpt)
    return model


def trained_imgsz(ckpt):
    """The image size (an int) a classifier checkpoint was trained at, or None when it does not say: YOLOv5's and
    this project's keep it in 'opt', ultralytics' in 'train_args'."""
    args = ckpt.get("opt") or ckpt.get("train_args") if isinstance(ckpt, dict) else None
    size = args.get("imgsz") if isinstance(args, dict) else None
    if isinstance(size, (list, tuple)) and size:  # [h, w]: classifiers are square, the first side stands for both
        size = size[0]
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _model_in(ckpt, prefer_ema):
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
        raise CheckpointError("checkpoint holds no model: expected this project's format, an upstream YOLOv5 .pt or an "
                              "ultralytics .pt")
    names = getattr(model, "names", None)
    if isinstance(names, dict):  # newer upstream and ultralytics store {index: name}
        model.names = [names[k] for k in sorted(names)]
    _upgrade_upstream_modules(model)
    d = getattr(model, "yaml", None)
    if isinstance(model, ClassificationModel) and (is_ultralytics(d) or NORMALIZATION_KEY in (d or {})):
        return _rebuilt_ultralytics_classifier(model)  # an ultralytics classifier, or one export.py wrote for it
    return model


def _rebuilt_ultralytics_classifier(pickled):
    """This project's classifier built from an unpickled ultralytics classifier's YAML (with the rates/widths plan
    this project's export adds), holding its weights: the unpickled modules carry ultralytics' attributes, and
    ultralytics' Classify behaves differently in eval (see model_from_checkpoint)."""
    d = dict(pickled.yaml)
    d.setdefault("ch", d.get("channels", 3))  # ultralytics names the input channels 'channels'
    eps = {m.eps for m in pickled.modules() if isinstance(m, nn.BatchNorm2d)}
    if len(eps) == 1 and eps != {TORCH_BN_EPS}:  # built with a detector's BatchNorm eps: keep it
        d["bn_eps"] = eps.pop()
    d.pop(NORMALIZATION_KEY, None)  # this project normalises in its preprocessing: project_state_dict drops the layer
    model = ClassificationModel(d)
    try:
        model.load_state_dict(project_state_dict(pickled))  # copies (and casts) into float32 parameters
    except RuntimeError:
        raise CheckpointError(f"ultralytics classifier '{d.get('yaml_file', '?')}': its weights do not fit the "
                              f"architecture its YAML describes (a model changed after it was built?)") from None
    model.names = list(pickled.names)
    return model


def _upgrade_upstream_modules(model):
    """Attributes that older torch/YOLOv5 pickles lack but current modules need."""
    for m in model.modules():
        if isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
        elif isinstance(m, nn.Conv2d) and not hasattr(m, "padding_mode"):
            m.padding_mode = "zeros"


def attempt_load(weights, device=None, fuse=False):
    """Eval-mode float model from a checkpoint path (this project's, upstream YOLOv5's or ultralytics')."""
    ckpt = load_checkpoint(attempt_download(weights), map_location="cpu")
    model = model_from_checkpoint(ckpt)
    if fuse and hasattr(model, "fuse"):
        model.fuse()
    return model.to(device or "cpu").eval()


def check_classifier(model, weights, command):
    """Refuse a detector where `command` needs a classifier (it would fail deep inside the forward pass)."""
    if not isinstance(model, ClassificationModel):
        raise ValueError(f"{command} needs a trained classifier as --weights; to start from the backbone of "
                         f"detector {weights}, train with classify/train.py --weights {weights} first")
    return model


def load_classifier(weights, device=None, command="this command"):
    """An eval-mode classifier to run: a checkpoint (attempt_load; a detector is refused) or an ONNX file export.py
    wrote, run by ONNX Runtime on the CPU (utils/onnx_model.py)."""
    from pathlib import Path

    if Path(str(weights)).suffix.lower() == ".onnx":
        from utils.onnx_model import OnnxClassifier

        if not Path(weights).is_file():
            raise FileNotFoundError(f"ONNX file '{weights}' not found")
        return OnnxClassifier(weights)
    return check_classifier(attempt_load(weights, device=device), weights, command)
