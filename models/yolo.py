"""YOLOv5 model parsing: YAML (+ per-layer compress rates) → nn.Sequential, and the model classes.

`ClassificationModel` and `DetectionModel` keep upstream's names and attributes so upstream checkpoints,
which pickle whole models, unpickle onto these classes (through the restricted loader in
models/io/checkpoints.py; nothing is evaluated from a file or a YAML).
"""

import contextlib
from copy import deepcopy
from pathlib import Path

import torch
import torch.nn as nn
import yaml

from models.common import Classify, Conv
from models.graph import ULTRALYTICS_PLAN
from models.rates import kept_width, parse_rates
from models.specs import BlockSpec, Row, register, spec_named, yaml_names
from utils.augmentations import IMAGENET_NORM, UNIT_NORM
from utils.log import LOGGER

MODELS_DIR = Path(__file__).resolve().parent

# A YAML names its modules through the block specs (models/specs.py), never through eval(): only registered names build.
_CONSTANTS = {"None": None, "True": True, "False": False}


class Detect(nn.Module):
    """YOLOv5 detection head. Kept so detector checkpoints and YAMLs load; only its backbone is used here."""

    stride = None

    def __init__(self, nc=80, anchors=(), ch=()):
        super().__init__()
        self.nc = nc
        self.no = nc + 5  # outputs per anchor
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.grid = [torch.empty(0) for _ in range(self.nl)]
        self.anchor_grid = [torch.empty(0) for _ in range(self.nl)]
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.inplace = True

    def forward(self, x):
        # Raw per-level maps (bs, na, ny, nx, no): enough for stride discovery and feature tests.
        out = []
        for i in range(self.nl):
            bs, _, ny, nx = x[i].shape
            out.append(self.m[i](x[i]).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out


def detect_outputs(args, f, ch, ch_full):
    """Detect: its YAML args get the widths of the maps it reads; it outputs no map a later layer could read."""
    return [*args, [ch[x] for x in f]], None, None


DETECT = register(BlockSpec(Detect, ("Detect",), outputs=detect_outputs, yolov5=("models.yolo.Detect",)))


def is_ultralytics(d):
    """True for an ultralytics-style YAML dict (YOLOv8/YOLO11/YOLO26: compound `scales`, ultralytics' width rule)."""
    return isinstance(d, dict) and bool(d.get("scales"))


def input_norm(model):
    """(mean, std) a model's weights expect: ultralytics' YOLOv8/YOLO11/YOLO26 (YAML with `scales`) take raw [0, 1]
    pixels, YOLOv5's take ImageNet-normalised ones. `model` may be a model, a YAML dict, or None (YOLOv5's)."""
    if hasattr(model, "input_mean_std"):  # an exported model that says (utils/onnx_model.py)
        return model.input_mean_std
    d = model if isinstance(model, dict) else getattr(model, "yaml", None)
    return UNIT_NORM if is_ultralytics(d) else IMAGENET_NORM


def builtin_cfg_for(state_dict):
    """The built-in `*-cls.yaml` whose unpruned backbone has exactly these tensor shapes, or None.

    Upstream YOLOv5 classifier checkpoints carry no YAML; their architecture is recognised from the weights.
    """
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


def ultralytics_yaml(name):
    """The YAML dict of an ultralytics model name such as 'yolo11n-cls.yaml', from the installed ultralytics package
    (the scale letter selects a row of its `scales`, as ultralytics resolves it), or None when it has none."""
    import re

    if not re.fullmatch(r"yolo(v\d+|\d+)[nslmx]?(-[\w-]+)?\.ya?ml", Path(name).name):
        return None
    try:
        from ultralytics.nn.tasks import yaml_model_load
        from ultralytics.utils import ROOT
    except ImportError:
        return None
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem)
    if not any((ROOT / "cfg" / "models").rglob(f"{unified}.yaml")):
        return None
    d = yaml_model_load(name)
    if d.get("scales") and not d.get("scale"):
        example = re.sub(r"^(yolo(?:v\d+|\d+))", rf"\g<1>{next(iter(d['scales']))}", unified)
        raise ValueError(f"model YAML '{name}' needs a scale letter ({', '.join(d['scales'])}), e.g. '{example}.yaml'")
    return d


def load_yaml(cfg):
    """A model YAML as a dict: from a dict, a path, a bare name resolved inside models/, or an ultralytics model name
    ('yolov8n-cls.yaml', 'yolo11s-cls.yaml', 'yolo26m.yaml', ...) resolved inside the ultralytics package."""
    if isinstance(cfg, dict):
        return deepcopy(cfg)
    path = Path(cfg)
    if not path.exists() and (MODELS_DIR / path.name).exists():
        path = MODELS_DIR / path.name
    if not path.exists() and (d := ultralytics_yaml(path.name)) is not None:
        return d
    if not path.exists():
        names = ", ".join(sorted(p.name for p in MODELS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"model YAML '{cfg}' not found (built in: {names}; ultralytics' yolov8/yolo11/yolo26 "
                                f"names with a scale letter, e.g. yolo11n-cls.yaml)")
    if path.is_dir():
        raise ValueError(f"model YAML '{cfg}' is a folder, not a YAML file")
    with open(path, errors="ignore") as f:
        try:
            d = yaml.safe_load(f)
        except yaml.YAMLError as e:  # the parser's message spans lines: keep its first, with the position
            where = getattr(e, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
            raise ValueError(f"model YAML '{cfg}' is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(d, dict) or "backbone" not in d:
        raise ValueError(f"model YAML '{cfg}' has no 'backbone:' list: not a YOLOv5/ultralytics model YAML")
    d["yaml_file"] = path.name
    return d


# Heads of YOLOv5's and ultralytics' detection-family YAMLs (detect, segment, pose, OBB): their backbones feed
# classifiers.
DETECTION_HEADS = {"Detect", "Segment", "Pose", "OBB", "Segment26", "Pose26", "OBB26"}


def classifier_yaml(cfg, cutoff=10):
    """A classifier YAML dict from cfg; a detector YAML keeps its first `cutoff` layers and gets a Classify head
    (YOLOv5's detector → classifier conversion, done on the YAML so rates and checkpoints work on it)."""
    d = load_yaml(cfg)
    rows = d["backbone"] + d["head"]
    if not any(m in DETECTION_HEADS for _, _, m, _ in rows):
        return d
    d["backbone"], d["head"] = rows[: (cutoff or 10) - 1], [[-1, 1, "Classify", ["nc"]]]
    d.pop("anchors", None)
    d.pop("rate", None)
    d.pop("widths", None)  # a plan names the detector's groups, not the classifier's
    if is_ultralytics(d):
        d["bn_eps"] = 1e-3  # ultralytics' detectors are built with this eps (its classifiers with torch's 1e-5)
        for k in ("end2end", "reg_max", "kpt_shape"):
            d.pop(k, None)
    return d


def with_plan(d, plan):
    """YAML dict d under pruning-plan rule `plan` ('' or None: d unchanged; 'ultralytics': every width stays one
    that ultralytics' YAML can say, so its trainer rebuilds the pruned model: models/specs.py Handler.yaml_derived)."""
    if not plan:
        return d
    if plan != ULTRALYTICS_PLAN:
        raise ValueError(f"--plan must be '{ULTRALYTICS_PLAN}' or empty, not '{plan}'")
    if not is_ultralytics(d):
        raise ValueError(f"--plan {plan} is for ultralytics architectures (YOLOv8/YOLO11/YOLO26), not "
                         f"{d.get('yaml_file', 'this YAML')}: ultralytics' YAML cannot say a YOLOv5-family classifier")
    return {**d, "plan": plan}


def layer_names(d):
    """'index Module' labels of a YAML's layers, used in messages."""
    return [f"{i} {m}" for i, (_, _, m, _) in enumerate(d["backbone"] + d["head"])]


def _resolve_arg(a, nc, anchors):
    if not isinstance(a, str):
        return a
    if a == "nc":
        return nc
    if a == "anchors":
        return anchors
    return _CONSTANTS.get(a, a)


def parse_model(d, ch, rates=None, widths=None):
    """Build the layers of YAML dict d for `ch` input channels, pruning layer i by rates[i].

    `widths` ({group name: kept width}, a pruning plan, checked by check_widths) overrides the rate-derived width of the named channel
    groups (the block handlers name them). Returns (nn.Sequential, save list). Each layer carries .i (index),
    .f (from), .type, .np (params), .rate, .width = (kept output channels, unpruned output channels) and
    .group_widths = {group name: (kept, unpruned)} of the channel groups it owns.
    """
    nc, anchors = d["nc"], d.get("anchors")
    gd, gw, max_channels = model_scales(d)
    rows = d["backbone"] + d["head"]
    rates = rates if rates is not None else [0.0] * len(rows)
    plan = widths or {}
    ultralytics_plan = d.get("plan") == ULTRALYTICS_PLAN  # keep what ultralytics' YAML cannot say (Handler.derived)
    LOGGER.debug(f"\n{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}")
    ch = ch_full = [ch]  # kept and unpruned output widths per layer
    layers, save, seen = [], [], set()
    for i, (f, n, name, args) in enumerate(rows):
        spec = row_spec(i, name)
        args = [_resolve_arg(a, nc, anchors) for a in args]
        if spec.scale is not None:
            args = spec.scale(args, d)
        n = max(round(n * gd), 1) if n > 1 else n  # upstream's repeat rule
        r, width, groups, derived = rates[i], None, {}, {}
        if spec.handler is not None:
            c1, c1_full = (w[f] if isinstance(f, int) else sum(w[x] for x in f) for w in (ch, ch_full))
            row = Row(f"model.{i}", args, n, c1, c1_full, gw, spec.cls, max_channels, is_ultralytics(d), spec.args)
            groups, derived = group_widths(spec.handler, row, r, plan, ultralytics_plan)
            seen.update(groups)
            _check_grouped(i, name, spec, args, groups, f, ch, ch_full)  # before building: torch would fail obscurely
            m_, c2, full, width = build_block(spec, row, {g: kept for g, (kept, _) in groups.items()})
        else:
            if r:
                raise ValueError(f"rate for layer {i} ({name}) must be 0: it has no filters to prune")
            args, c2, full = (spec.outputs or passthrough)(args, f, ch, ch_full)
            m_ = nn.Sequential(*(spec.cls(*args) for _ in range(n))) if n > 1 else spec.cls(*args)
        m_.i, m_.f, m_.type = i, f, f"models.common.{name}" if spec.cls.__module__ == "models.common" else name
        m_.np = sum(x.numel() for x in m_.parameters())
        m_.rate, m_.width, m_.group_widths, m_.derived = r, width or (c2, full), groups, derived
        LOGGER.debug(f"{i:>3}{str(f):>18}{n:>3}{m_.np:10.0f}  {name:<40}{str(args):<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m_)
        if i == 0:
            ch, ch_full = [], []
        ch.append(c2)
        ch_full.append(full)
    unknown = sorted(set(plan) - seen)
    if unknown:
        raise ValueError(f"widths: no channel group named {', '.join(unknown)} in this model (its groups: "
                         f"{', '.join(sorted(seen))})")
    return nn.Sequential(*layers), sorted(set(save))


def model_scales(d):
    """(depth multiple, width multiple, max channels) of YAML dict d; ultralytics' from the row of its scale."""
    if is_ultralytics(d):
        gd, gw, max_channels = d["scales"][d.get("scale") or next(iter(d["scales"]))]
        return gd, gw, max_channels
    return d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")


def row_spec(i, name):
    """The block spec YAML row i names (a lookup, never an eval)."""
    spec = spec_named(name)
    if spec is None:
        raise ValueError(f"layer {i}: unknown module '{name}' (known: {', '.join(yaml_names())})")
    return spec


def passthrough(args, f, ch, ch_full):
    """A parameter-free layer keeps its input's width."""
    return args, ch[f], ch_full[f]


def group_widths(handler, row, rate, plan, ultralytics_plan):
    """({group: (kept, unpruned)}, {group: (parent, ratio)}) of a block row: its rate's widths, overridden by the
    plan's, and under `plan: ultralytics` the widths ultralytics derives itself (Handler.yaml_derived, .derived)."""
    full_widths = handler.groups(row)
    keep_full = set(handler.yaml_derived(row)) if ultralytics_plan else set()
    kept = {g: c if g in keep_full else plan.get(g, kept_width(c, rate)) for g, c in full_widths.items()}
    derived = handler.derived(row) if ultralytics_plan else {}
    for g, (parent, ratio) in derived.items():  # widths ultralytics computes from another: follow it
        kept[g] = min(full_widths[g], max(1, int((row.c1 if parent is None else kept[parent]) * ratio)))
    for g, c in full_widths.items():
        if not 1 <= kept[g] <= c:
            raise ValueError(f"widths: {g} must keep between 1 and its {c} channels, not {kept[g]}")
    for tie in handler.tied(row):
        if len({kept[g] for g in tie}) > 1:
            raise ValueError(f"widths: {' and '.join(tie)} are the two halves of one split and must keep "
                             f"equal widths, not {' and '.join(str(kept[g]) for g in tie)}")
    return {g: (kept[g], c) for g, c in full_widths.items()}, derived


def build_block(spec, row, kept):
    """(module, kept output channels, unpruned output channels, width to report) of a block row at widths `kept`;
    a block that does not repeat inside is stacked row.n times (upstream's rule)."""
    m_, c2, full, width = spec.handler.build(row, kept)
    if row.n > 1 and not spec.repeats_inside:
        m_ = nn.Sequential(m_, *(spec.handler.build(row, kept)[0] for _ in range(row.n - 1)))
    return m_, c2, full, width


def _check_grouped(i, name, spec, args, groups, f, ch, ch_full):
    """Refuse pruning at a grouped/depthwise convolution (its channel groups would have to shrink together);
    unpruned, such a layer maps one to one. `args` are the YAML arguments, `groups` {group: (kept, unpruned)}."""
    g = spec.args.get(args, "groups", 1)  # the spec's schema says where g sits
    if not isinstance(g, int) or g == 1:
        return
    fed = [f] if isinstance(f, int) else f
    pruned_input = spec.grouped_reads_input and any(ch[x] != ch_full[x] for x in fed)
    if any(kept < full for kept, full in groups.values()) or pruned_input:
        raise ValueError(f"layer {i} ({name}) has a grouped convolution (g={g}), which cannot be pruned: give it "
                         f"rate 0{' and leave the layers feeding it unpruned' if spec.grouped_reads_input else ''}")


def check_widths(widths):
    """A plan {group name: kept width} as plain str → int (YAML/checkpoint friendly); None or {} is no plan."""
    if not widths:
        return {}
    if not isinstance(widths, dict):
        raise ValueError(f"widths must be a mapping of channel group name to kept width, not {type(widths).__name__}")
    plan = {}
    for g, w in widths.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w != int(w):
            raise ValueError(f"widths: {g} must be a whole number of channels, not {w!r}")
        plan[str(g)] = int(w)
    return plan


def resolve_rates(d, rate=None):
    """Per-layer rates: the `rate` argument overrides the YAML's `rate` key; neither means all zeros."""
    spec = rate if rate is not None else d.get("rate")
    return parse_rates(spec, layer_names(d))


class BaseModel(nn.Module):
    """Forward through a layer list with YOLOv5's from/save routing."""

    def forward(self, x):
        return self._forward_once(x)

    def _forward_once(self, x):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def fuse(self):
        """Fold BatchNorm into the preceding conv for inference."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        for m in self.model.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_bn_eval(m.conv.eval(), m.bn.eval())
                delattr(m, "bn")
                m.forward = m.forward_fuse
        return self


class DetectionModel(BaseModel):
    """A YOLOv5 detector from a YAML; here it is a source of backbone weights."""

    def __init__(self, cfg="yolov5s.yaml", ch=3, nc=None, anchors=None):
        super().__init__()
        self.yaml = load_yaml(cfg)
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        if nc and nc != self.yaml["nc"]:
            self.yaml["nc"] = nc
        if anchors:
            self.yaml["anchors"] = round(anchors)
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=ch)
        self.names = [str(i) for i in range(self.yaml["nc"])]
        self.inplace = self.yaml.get("inplace", True)
        m = self.model[-1]
        if isinstance(m, Detect):
            s = 256  # discover strides from a dummy pass
            with torch.no_grad():
                m.stride = torch.tensor([s / x.shape[-2] for x in self.forward(torch.zeros(1, ch, s, s))])
            m.anchors /= m.stride.view(-1, 1, 1)
            self.stride = m.stride
        else:
            self.stride = torch.tensor([32])
        _initialize_weights(self)


Model = DetectionModel  # older upstream checkpoints pickle models.yolo.Model


class ClassificationModel(BaseModel):
    """A YOLOv5 classifier from a YAML (with per-layer compress rates) or cut from a detector."""

    def __init__(self, cfg=None, model=None, nc=None, cutoff=10, ch=3, rate=None, widths=None):
        super().__init__()
        if model is not None:
            self._from_detection_model(model, nc or 1000, cutoff)
        else:
            self._from_yaml(cfg if cfg is not None else "yolov5s-cls.yaml", ch, nc, rate, widths)

    def _from_yaml(self, cfg, ch, nc, rate, widths):
        """A `rate` or `widths` argument is a whole new pruning plan: the YAML's own `widths:` then gives way."""
        self.yaml = load_yaml(cfg)
        if nc and nc != self.yaml["nc"]:
            self.yaml["nc"] = nc
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        self.yaml["rate"] = resolve_rates(self.yaml, rate)
        if rate is not None or widths is not None:
            self.yaml.pop("widths", None)
            if widths:
                self.yaml["widths"] = widths
        if self.yaml.get("widths"):  # checked once, whether the YAML or the caller gave it
            self.yaml["widths"] = check_widths(self.yaml["widths"])
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=ch, rates=self.yaml["rate"],
                                            widths=self.yaml.get("widths"))
        self.nc = self.yaml["nc"]
        self.names = [str(i) for i in range(self.nc)]
        self.stride = torch.tensor([32])
        _initialize_weights(self)

    def _from_detection_model(self, model, nc, cutoff):
        """Keep a detector's first `cutoff` layers and replace the last with a Classify head (as upstream)."""
        with contextlib.suppress(AttributeError):
            model = model.model if not isinstance(model.model, nn.Sequential) else model  # unwrap wrappers
        model.model = model.model[:cutoff]
        m = model.model[-1]
        c1 = m.conv.in_channels if hasattr(m, "conv") else m.cv1.conv.in_channels
        c = Classify(c1, nc)
        c.i, c.f, c.type = m.i, m.f, "models.common.Classify"
        model.model[-1] = c
        self.model = model.model
        self.stride = model.stride
        self.save = []
        self.nc = nc
        self.names = [str(i) for i in range(nc)]
        # A YAML that rebuilds this architecture, so checkpoints of it need no pickled modules.
        if isinstance(getattr(model, "yaml", None), dict) and "backbone" in model.yaml:
            self.yaml = dict(classifier_yaml(model.yaml, cutoff), nc=nc, rate=[0.0] * cutoff)


def _initialize_weights(model):
    """YOLOv5's BatchNorm settings and in-place activations, on every module but the Classify head's.

    Upstream builds a classifier's Classify head after `initialize_weights` has run on the detector it is cut from,
    so the head's BatchNorm keeps torch's defaults (eps 1e-5, momentum 0.1); its released classifiers were trained
    that way, and the same eps is what reproduces their logits.
    ultralytics' classifiers keep torch's defaults everywhere; its detectors use YOLOv5's settings, so a classifier cut
    from one (`bn_eps` in its YAML, set by classifier_yaml) keeps them.
    """
    d = getattr(model, "yaml", None)
    if is_ultralytics(d):
        if d.get("bn_eps"):
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps, m.momentum = d["bn_eps"], 0.03
        return
    head = {id(m) for c in model.modules() if isinstance(c, Classify) for m in c.modules()}
    for m in model.modules():
        if id(m) in head:
            continue
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
            m.momentum = 0.03
        elif isinstance(m, (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU)):
            m.inplace = True
