"""Filter pruning: top-k selection and weight mapping (channel groups: models/graph.py traces the block handlers).

A *channel group* is a set of conv outputs that must keep the same channel indices:
- a `Conv` layer's output;
- inside a `C3` with shortcut, the residual stream: `cv1` and every added `m[i].cv2` (their outputs are
  summed); each `m[i].cv1`, `cv2` and `cv3` output is a group of its own;
- `SPPF`'s and `SPP`'s `cv1` and `cv2`; `Focus`'s conv; `Classify`'s 1280-wide conv (its linear's `nc`
  outputs are never pruned).
- ultralytics' `C2f`/`C3k2`: `cv1`'s two halves (groups of equal width, each a slice of one conv's output), the
  stream of the second half and every added inner output, each inner block's own groups, `cv2`; `C2PSA`: each
  feed-forward hidden width and `cv2` (its halves and attention stream are fixed: the heads' layout needs them).
Consumers select input channels to match their producers: `cv3` reads cat(stream, cv2), the next layer
reads the previous layer's output group, `Classify.linear` reads its conv's group.

Scores come from the criteria in models/criteria.py (a registry; each criterion also says how a group's
member scores reduce to one score per channel). The kept channels are the top-k scores (k from the pruned
model's width), ties broken by a stable sort so the lower index wins, and kept indices are stored ascending.
"""

import torch
import torch.nn as nn

from models.common import Conv
from models.graph import ChannelGroup, channel_groups, trace_model  # noqa: F401 (re-exported: callers import them here)
from utils.log import LOGGER


def is_pruned(model):
    """True when `model` is pruned from its unpruned architecture: some channel group keeps fewer channels than
    unpruned (a width plan or a rate), or a layer was built at a rate > 0 (a rate too small to cut a channel still
    counts). A model this project did not build (no .group_widths, no .rate on its layers) is not pruned."""
    layers = getattr(model, "model", [])
    return any(kept < full for m in layers for kept, full in getattr(m, "group_widths", {}).values()) or any(
        getattr(m, "rate", 0) > 0 for m in layers)


def needs_scores(model, source=None):
    """True when filters must be ranked to fill `model`: without a source, when it is pruned (is_pruned); given the
    source model, when some channel group keeps fewer channels than the source's (an already pruned source at the
    model's own widths needs none)."""
    if source is None:
        return is_pruned(model)
    _, ref_widths = _reference(model, getattr(source, "yaml", None))
    return any(g.channels < ref_widths[g.name] for g in channel_groups(model))


def select_channels(scores, k):
    """Indices of the k highest scores, ties to the lower index, returned ascending."""
    order = torch.argsort(torch.as_tensor(scores), descending=True, stable=True)
    return order[:k].sort().values


# ------------------------------------------------------------------------------------------ load_model
def _source_weights(source):
    """(float32 state dict, YAML dict or None) from a checkpoint path, a model, or a state dict."""
    yaml_dict = None
    if isinstance(source, nn.Module):
        state, yaml_dict = source.state_dict(), getattr(source, "yaml", None)
    elif isinstance(source, dict) and source and all(isinstance(v, torch.Tensor) for v in source.values()):
        state = source
    else:
        from models.experimental import model_from_checkpoint
        from models.io.checkpoints import load_checkpoint
        from utils.downloads import attempt_download

        ckpt = load_checkpoint(attempt_download(source)) if not isinstance(source, dict) else source
        return _source_weights(model_from_checkpoint(ckpt))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, yaml_dict


def _same_layers(a, b):
    """True when YAML dicts a and b describe the same layers (rates and nc aside)."""
    keys = ("backbone", "head", "depth_multiple", "width_multiple", "scale")  # ultralytics: one YAML, several scales
    return isinstance(a, dict) and isinstance(b, dict) and all(a.get(k) == b.get(k) for k in keys)


def source_architecture(model, source_yaml=None):
    """`model`'s layers at the source's rates and widths (an already pruned source, same YAML), else unpruned."""
    from models.yolo import ClassificationModel

    same = _same_layers(source_yaml, model.yaml)
    rates = source_yaml["rate"] if same and "rate" in source_yaml else 0.0
    widths = source_yaml.get("widths") if same else None  # a source pruned by a width plan
    return ClassificationModel(model.yaml, nc=model.nc, rate=rates, widths=widths)


def _foreign_layers(model_yaml, source_yaml):
    """{index: (ours, the source's)} module names of the model's layers that a detector source has a different
    layer at (a classifier YAML of the detector's family: yolo11n-cls.yaml's layer 9 is a C2PSA where yolo11n.yaml
    has an SPPF). Those take nothing from the source, as ultralytics' own load() would take nothing of another shape.
    Empty for a classifier source: there, every difference is a wrong architecture."""
    from models.yolo import DETECTION_HEADS

    if not isinstance(source_yaml, dict) or not isinstance(model_yaml, dict):
        return {}
    theirs = source_yaml.get("backbone", []) + source_yaml.get("head", [])
    if not any(row[2] in DETECTION_HEADS for row in theirs):
        return {}
    ours = model_yaml["backbone"] + model_yaml["head"]
    return {i: (row[2], theirs[i][2] if i < len(theirs) else "nothing") for i, row in enumerate(ours)
            if i >= len(theirs) or list(row) != list(theirs[i])}


def _reference(model, source_yaml=None):
    """Tensor shapes and channel-group widths of the source's architecture (source_architecture), built on the meta
    device (no memory, no init)."""
    with torch.device("meta"):
        ref = source_architecture(model, source_yaml)
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    return shapes, {g.name: g.channels for g in channel_groups(ref)}


def _layout_index(layout, kept, source_width):
    """Input-channel indices (source numbering) a consumer keeps, from its producers' concat layout."""
    parts, offset = [], 0
    for group, width in layout:
        if group is None:  # image channels are never pruned
            parts.append(torch.arange(width) + offset)
            offset += width
        else:
            parts.append(kept[group] + offset)
            offset += source_width[group]
    return torch.cat(parts)


def load_model(model, source, scores=None):
    """Map `source` weights (YOLOv5 classifier or detector backbone) into the possibly pruned `model`.

    The source may itself be pruned (a checkpoint of this project with the same YAML): then it is pruned
    further from its own widths, and `scores` must come from ranking that pruned source. It may also be fused
    (BatchNorm folded into the convs): each fold maps to an identity BatchNorm carrying the folded bias.

    For each channel group the top-k channels by `scores` are kept (k = the model's width); conv kernels
    are copied as W[out][:, in], BatchNorm weight/bias/mean/var follow the kept outputs, and the Classify
    linear keeps the columns of its conv's kept channels. Layers missing from the source, or whose shape
    differs only because `nc` differs, keep their initialisation and are logged. Returns the model.
    """
    src, source_yaml = _source_weights(source)
    foreign = _foreign_layers(model.yaml, source_yaml)
    src = {k: v for k, v in src.items() if not (k.startswith("model.") and int(k.split(".")[1]) in foreign)}
    reinit = {i: pair for i, pair in foreign.items() if pair[0] != "Classify"}  # a new head is the usual case
    if reinit:
        LOGGER.info("load_model: initialised, not copied: " + ", ".join(
            f"layer {i} ({ours}; the detector has {theirs} there)" for i, (ours, theirs) in reinit.items()))
    src = _unfold_batchnorm(src, model)
    ref, source_width = _reference(model, source_yaml)
    tracer = trace_model(model)
    target = model.state_dict()

    # Architecture check: every tensor the source shares with the model must have the source architecture's shape.
    head = {k for k in ref if ".linear." in k}
    kept_init, wrong = [], []
    for k, shape in ref.items():
        if k not in src:
            kept_init.append(k)
        elif src[k].shape != shape:
            (kept_init if k in head else wrong).append(k)
    if wrong:
        k = wrong[0]
        raise ValueError(f"source weights do not match {model.yaml.get('yaml_file', 'the model YAML')}: {k} is "
                         f"{tuple(src[k].shape)} in the source but {tuple(ref[k])} expected "
                         f"({len(wrong)} mismatched tensors; another model size?)")
    if len(kept_init) == len(ref):
        raise ValueError("source weights share no layers with the model: not a YOLOv5 classifier or detector?")

    # Kept output indices per group, in source channel numbering.
    kept = {}
    for g in tracer.groups.values():
        n_src = source_width[g.name]
        if g.channels > n_src:
            raise ValueError(f"group {g.name} keeps {g.channels} channels but the source has only {n_src}: the source is "
                             f"pruned more than the model (lower --rate, or start from the unpruned weights)")
        if g.channels == n_src or not any(f"{n}.conv.weight" in src for n in g.members):
            kept[g.name] = torch.arange(g.channels)  # unpruned, or nothing to copy: any choice is the same
            continue
        s = None if scores is None else scores.get(g.name)
        if s is None:
            raise ValueError(f"group {g.name} is pruned ({n_src} → {g.channels} channels) but no scores were given "
                             f"for it: rank the source with classify/rank.py, or pass --ranks")
        if len(s) != n_src:
            raise ValueError(f"scores for {g.name} have {len(s)} channels, the source has {n_src}: scores of another model?")
        kept[g.name] = select_channels(s, g.channels)

    with torch.no_grad():
        for name, layout in tracer.outputs.items():  # every conv: its output layout (a group, halves, or a concat)
            inp = _layout_index(tracer.inputs[name], kept, source_width)
            _copy_conv(target, src, name, _layout_index(layout, kept, source_width), inp, ref)
        for name, layout in tracer.inputs.items():
            if name.endswith(".linear") and f"{name}.weight" not in kept_init:
                cols = _layout_index(layout, kept, source_width)
                target[f"{name}.weight"].copy_(src[f"{name}.weight"][:, cols])
                target[f"{name}.bias"].copy_(src[f"{name}.bias"])
    model.load_state_dict(target)

    ignored = [k for k in src if k not in ref]
    if kept_init:
        modules = sorted({_conv_module_of(k) for k in kept_init})
        nc_note = f" (source nc {src[f'{h}'].shape[0]}, model nc {ref[h][0]})" if (h := next(
            (k for k in kept_init if k in head and k in src), None)) else ""
        LOGGER.info(f"load_model: kept initialisation of {', '.join(modules)}: not in the source or of another nc{nc_note}")
    LOGGER.info(f"load_model: transferred {len(ref) - len(kept_init)}/{len(ref)} tensors"
                + (f", ignored {len(ignored)} source tensors outside the classifier" if ignored else ""))
    return model


def _unfold_batchnorm(src, model):
    """A fused source (BatchNorm folded into each conv's weight and bias, as `fuse()` leaves it) as unfused tensors:
    the folded conv weight, and an identity BatchNorm (mean 0, var 1 - eps, gamma 1) whose beta is the folded bias."""
    for name, m in model.named_modules():
        bias = f"{name}.conv.bias"
        if isinstance(m, Conv) and bias in src and f"{name}.bn.weight" not in src:
            b = src.pop(bias)
            n = len(b)
            src.update({f"{name}.bn.weight": torch.ones(n), f"{name}.bn.bias": b,
                        f"{name}.bn.running_mean": torch.zeros(n), f"{name}.bn.running_var": torch.full((n,), 1.0 - m.bn.eps)})
    return src


def _conv_module_of(key):
    """'model.9.conv.bn.weight' → 'model.9.conv' (the Conv block a tensor belongs to); linears stay themselves."""
    parent = key.rsplit(".", 1)[0]
    return parent.rsplit(".", 1)[0] if parent.endswith((".bn", ".conv")) else parent


def _copy_conv(target, src, name, out, inp, ref):
    """Copy one Conv's kernel and BatchNorm, keeping outputs `out` and inputs `inp` (source numbering)."""
    w = f"{name}.conv.weight"
    if w not in src or src[w].shape != ref[w]:
        return  # missing from the source: keeps its initialisation (logged by the caller)
    if target[w].shape[1] != len(inp):  # grouped conv: parse_model keeps it unpruned, so its inputs map one to one
        inp = slice(None)
    target[w].copy_(src[w][out][:, inp])
    for t in ("weight", "bias", "running_mean", "running_var"):
        target[f"{name}.bn.{t}"].copy_(src[f"{name}.bn.{t}"][out])
    nbt = f"{name}.bn.num_batches_tracked"
    if nbt in src:
        target[nbt].copy_(src[nbt])
