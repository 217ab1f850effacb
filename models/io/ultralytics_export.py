"""A classifier of this project (pruned or not) as an ultralytics checkpoint: `ultralytics.YOLO(file)` predicts,
validates and exports it with ultralytics' own code.

This project's blocks mirror ultralytics' (same attributes, same forward), so a copy of the layer list changes each
module's class to its ultralytics counterpart, module by module, and goes into an ultralytics ClassificationModel;
pruned widths need nothing more, since ultralytics' forwards take them from the weights and from attributes our blocks
share with theirs (C2f.c, Attention.key_dim, ...). The file is saved as ultralytics saves its own (a pickled model in
a dict with 'train_args', 'date', 'version', ...).

Preprocessing: ultralytics feeds its classifiers RGB in [0, 1], in prediction, validation and its exported formats
alike, and so does this project for ultralytics' architectures (models/yolo.py input_norm). A YOLOv5-family
model expects ImageNet-normalised RGB: its exported model starts with a fixed per-channel 1x1 convolution that does
the normalisation, so every ultralytics path sees the inputs the model was trained on (the YAML's
`input_normalization` says so; project_state_dict leaves it out when the file is read back here). Resizing differs a little: ultralytics scales the short side with PIL (antialiased bilinear) then crops
the centre; this project crops the centre square then scales it with cv2 (bilinear). Same region, slightly different
pixels; an image already at the model's size reaches both models unchanged.
"""

from copy import deepcopy
from datetime import datetime

import torch
import torch.nn as nn

from models.io.checkpoints import save_checkpoint
from models.specs import ultralytics_counterpart_names
from models.yolo import cfg_of, input_norm, load_yaml
from utils.augmentations import IMAGENET_MEAN, IMAGENET_STD, UNIT_NORM

# Per-layer notes of this project's pruning plan: left out, the YAML carries the plan. ultralytics' layer loop and
# summaries read the others (f, i, np, type).
PLAN_ATTRIBUTES = ("rate", "width", "group_widths", "derived")

NORMALIZATION_KEY = "input_normalization"  # YAML key: the exported model's first layer normalises (mean, std)


class UnsupportedModelError(ValueError):
    """A model with a module ultralytics has no counterpart for (a user error: one line, exit 2)."""


def ultralytics_counterparts():
    """This project's module classes → ultralytics' classes of the same layout and forward (their specs say which)."""
    from importlib import import_module

    table = {}
    for cls, name in ultralytics_counterpart_names().items():
        module, _, attr = name.rpartition(".")
        table[cls] = getattr(import_module(module), attr)
    return table


def is_torch_module(m):
    """A torch.nn class (Conv2d, BatchNorm2d, SiLU, Sequential, ...): ultralytics uses these as they are."""
    return type(m).__module__.startswith("torch.nn.")


def class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def convert_layers(layers):
    """A copy of `layers` (an nn.Sequential of this project's layers) made of ultralytics' classes.

    Raises UnsupportedModelError naming the first module ultralytics has no counterpart for.
    """
    table = ultralytics_counterparts()
    layers = deepcopy(layers)
    for name, m in layers.named_modules():
        if is_torch_module(m):
            continue
        target = table.get(type(m))
        if target is None:
            where = f" (model.{name})" if name else ""
            raise UnsupportedModelError(f"cannot export to ultralytics: {type(m).__name__}{where} has no ultralytics "
                                        f"counterpart (supported: {', '.join(sorted(c.__name__ for c in table))})")
        m.__class__ = target
    for layer in layers:
        for k in PLAN_ATTRIBUTES:
            layer.__dict__.pop(k, None)
        layer.type = class_path(type(layer))  # as ultralytics names its layers in summaries
    return layers


def input_normalization(mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(x - mean) / std per channel as a depthwise 1x1 convolution: a plain torch module, so every ultralytics
    path (fuse, ONNX/TorchScript export, its restricted loader) handles it."""
    norm = nn.Conv2d(3, 3, 1, groups=3, bias=True)
    with torch.no_grad():
        norm.weight.copy_((1 / torch.tensor(std)).view(3, 1, 1, 1))
        norm.bias.copy_(-torch.tensor(mean) / torch.tensor(std))
    norm.requires_grad_(False)
    return norm


def with_input_normalization(layers):
    """layers with the first one wrapped as Sequential(normalisation, layer): ultralytics' inputs in, this project's
    inputs to the model's first layer."""
    first = layers[0]
    wrapped = nn.Sequential(input_normalization(), first)
    wrapped.f, wrapped.i, wrapped.type = first.f, first.i, class_path(nn.Sequential)
    wrapped.np = sum(p.numel() for p in wrapped.parameters())
    return nn.Sequential(wrapped, *list(layers)[1:])


def ultralytics_yaml(model):
    """The model YAML as ultralytics reads it ('channels' for the input channels), keeping this project's pruning
    plan (rate, widths) so the file rebuilds here, and the normalisation the model now starts with; ultralytics
    ignores keys it does not know."""
    d = load_yaml(cfg_of(model))  # the model's own YAML, or the built-in one its weights match (upstream files)
    d["nc"], d["channels"] = len(model.names), d.get("ch", 3)
    mean, std = input_norm(model)
    if (mean, std) != UNIT_NORM:
        d[NORMALIZATION_KEY] = {"mean": list(mean), "std": list(std)}
    return d


def project_state_dict(ul_model):
    """An exported model's weights under this project's keys (what ClassificationModel(ul_model.yaml) holds): the
    input normalisation left out, since this project normalises in its preprocessing. For loading the file back."""
    state = ul_model.state_dict()
    if not ul_model.yaml.get(NORMALIZATION_KEY):
        return state
    first, norm = "model.0.1.", "model.0.0."
    return {("model.0." + k[len(first):] if k.startswith(first) else k): v
            for k, v in state.items() if not k.startswith(norm)}


def trainable_yaml(model, d, layers):
    """(YAML, problem): the YAML to write into the exported file, and why ultralytics' trainer could not keep the
    model's widths (None when it can). ultralytics' Model.train() rebuilds the model from its YAML: for an
    ultralytics architecture that is a YAML with every width written out (models/io/ultralytics_yaml.py), when
    ultralytics rebuilds it exactly from that; otherwise `d` as it is."""
    from models.io.ultralytics_yaml import explicit_yaml, rebuild_mismatch

    if NORMALIZATION_KEY in d:
        return d, "a YOLOv5-family model starts with an input normalisation layer that ultralytics' YAML cannot say"
    explicit = explicit_yaml(model, d)
    problem = rebuild_mismatch(explicit, layers)
    return (d, problem) if problem else (explicit, None)


def ultralytics_model(model, imgsz=224, warn=False):
    """An ultralytics ClassificationModel holding a copy of `model`'s layers and weights (CPU, float32, eval mode).
    warn: log one warning when ultralytics' trainer would not keep its widths (see trainable_yaml)."""
    from ultralytics.nn.tasks import ClassificationModel

    from utils.log import LOGGER

    # Made without ultralytics' constructor, which would build (and count the FLOPs of) an unpruned model only to
    # have its layers replaced; these are the attributes it sets (tests/test_export_ultralytics.py compares them).
    ul = ClassificationModel.__new__(ClassificationModel)
    nn.Module.__init__(ul)
    ul.yaml = ultralytics_yaml(model)
    ul.model = convert_layers(model.model)
    if NORMALIZATION_KEY in ul.yaml:  # a YOLOv5-family model: it normalises its [0, 1] inputs itself
        ul.model = with_input_normalization(ul.model)
    ul.save = list(model.save)
    ul.stride = torch.Tensor([1])  # ultralytics' classifiers have no stride constraint
    ul.names = dict(enumerate(model.names))
    ul.args = train_args(imgsz)
    ul.yaml, problem = trainable_yaml(model, ul.yaml, ul.model)
    if problem and warn:
        LOGGER.warning(f"WARNING ⚠️ ultralytics: predict, val and export keep this model, but YOLO(file).train() "
                       f"rebuilds it from its YAML and would not keep its widths: {problem}"
                       + ("" if NORMALIZATION_KEY in ul.yaml else "; prune with --plan ultralytics to make every "
                          "width one its YAML can say"))
    return ul.cpu().float().eval()


def train_args(imgsz):
    """What ultralytics keeps from a checkpoint's arguments: the task and the image size (an int when square)."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    return {"task": "classify", "imgsz": h if h == w else [h, w]}


def ultralytics_checkpoint(model, imgsz=224, half=False):
    """The checkpoint dict ultralytics' loader reads: the model (float16 with half, as ultralytics' own files; float32
    by default, so outputs match this project's exactly), no EMA or optimizer, its arguments and provenance."""
    import ultralytics

    ul = ultralytics_model(model, imgsz, warn=True)
    ul = ul.half() if half else ul
    for p in ul.parameters():
        p.requires_grad = False
    return {"date": datetime.now().astimezone().isoformat(), "version": ultralytics.__version__,
            "model": ul, "ema": None, "optimizer": None, "epoch": -1, "best_fitness": None,
            "train_args": train_args(imgsz)}


def export_ultralytics(model, file, imgsz=224, half=False):
    """Write `model` (this project's classifier) as an ultralytics checkpoint to file, atomically."""
    save_checkpoint(ultralytics_checkpoint(model, imgsz, half), file)
    return file


def ultralytics_logits(file, x):
    """Logits of the ultralytics checkpoint `file`, loaded by ultralytics' own loader, on x: a batch preprocessed as
    this project preprocesses that model, turned back into ultralytics' [0, 1] inputs where it differs."""
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(file, device=x.device)
    model = model.to(x.dtype)
    norm = model.yaml.get(NORMALIZATION_KEY) or dict(zip(("mean", "std"), UNIT_NORM))
    mean, std = (torch.tensor(norm[k]).view(1, 3, 1, 1).to(x) for k in ("mean", "std"))
    with torch.no_grad():
        return model(x * std + mean)[1]  # ultralytics' Classify returns (probabilities, logits) in eval mode
