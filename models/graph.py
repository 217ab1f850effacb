"""Channel groups, one handler per block type: the single place that knows a block's pruning rules.

A *channel group* is a set of conv outputs that must keep the same channel indices. Each handler declares,
for its block type:
- `groups(spec)`: the groups the block owns, {name: unpruned width} (names are stable ids such as
  'model.2.stream', 'model.4.m.1.cv1', 'model.9.conv': scores files, plans and tests use them);
- `build(spec, widths)`: the block built from one kept width per group;
- `trace(tracer, prefix, module, layout)`: on a built block, which conv belongs to which group and how each
  conv's input is laid out from its producers (a list of (group or None for image channels, width) segments
  in concat order).
`parse_model` (models/yolo.py) builds from `groups` + `build`; `trace_model` walks a built model with `trace`,
for `channel_groups` and `load_model`'s layouts. Parameter-free layers (Concat, Upsample) pass channels through.
"""

import math
from dataclasses import dataclass, field

from models.common import C3, SPP, SPPF, Bottleneck, Classify, Concat, Conv, Focus

CLASSIFY_HIDDEN = 1280  # Classify's hidden conv width (efficientnet_b0 size), the prunable part of the head


@dataclass
class ChannelGroup:
    name: str  # stable id, e.g. 'model.2.stream', 'model.4.m.1.cv1', 'model.9.conv'
    members: list = field(default_factory=list)  # qualified names of the Conv modules whose outputs are tied
    channels: int = 0  # output width in the traced model
    adds: list = field(default_factory=list)  # residual modules whose outputs are this group's maps after an add


@dataclass
class BlockSpec:
    """What parse_model knows about one YAML row when it builds it."""

    prefix: str  # 'model.4'
    args: list  # YAML args, resolved ('nc' → the class count), before width_multiple
    n: int  # repeats after depth_multiple
    c1: int  # kept input channels
    c1_full: int  # unpruned input channels
    gw: float  # width_multiple

    def arg(self, i, default):
        return self.args[i] if len(self.args) > i else default


def make_divisible(x, divisor=8):
    """Smallest multiple of divisor ≥ x (YOLOv5's width rule)."""
    return math.ceil(x / divisor) * divisor


class Handler:
    """Pruning rules of one block type (see the module docstring)."""

    module = None

    def groups(self, s):
        raise NotImplementedError

    def build(self, s, w):
        """(block, kept output channels, unpruned output channels, (kept, unpruned) width to report)."""
        raise NotImplementedError

    def trace(self, t, p, m, layout):
        raise NotImplementedError


class ConvHandler(Handler):
    module = Conv

    def groups(self, s):
        return {s.prefix: make_divisible(s.args[0] * s.gw, 8)}

    def build(self, s, w):
        full, c2 = make_divisible(s.args[0] * s.gw, 8), w[s.prefix]
        return Conv(s.c1, c2, *s.args[1:]), c2, full, None

    def trace(self, t, p, m, layout):
        return t.conv(p, m, layout)


class C3Handler(Handler):
    """cv1 and every added m[i].cv2 form the residual stream; each m[i].cv1, cv2, cv3 is its own group; cv3
    reads cat(last bottleneck's output, cv2)."""

    module = C3

    @staticmethod
    def _names(p, n, shortcut):
        stream = f"{p}.stream" if shortcut else f"{p}.cv1"
        outs = [stream] * n if shortcut else [f"{p}.m.{j}.cv2" for j in range(n)]
        return stream, [f"{p}.m.{j}.cv1" for j in range(n)], outs

    def groups(self, s):
        full = make_divisible(s.args[0] * s.gw, 8)
        hidden = int(full * s.arg(3, 0.5))  # YAML args: [c2, shortcut, g, e]
        stream, inner, outs = self._names(s.prefix, s.n, s.arg(1, True))
        return {stream: hidden, **{g: hidden for g in inner + outs}, f"{s.prefix}.cv2": hidden,
                f"{s.prefix}.cv3": full}

    def build(self, s, w):
        p, full = s.prefix, make_divisible(s.args[0] * s.gw, 8)
        stream, inner, outs = self._names(p, s.n, s.arg(1, True))
        c2 = w[f"{p}.cv3"]
        block = C3(s.c1, c2, s.n, *s.args[1:], c_=w[stream], cv2_=w[f"{p}.cv2"],
                   m_=[(w[h], w[o]) for h, o in zip(inner, outs)])
        return block, c2, full, None

    def trace(self, t, p, m, layout):
        t.inputs[f"{p}.cv1"] = t.inputs[f"{p}.cv2"] = layout
        stream = t.new_group(f"{p}.stream" if any(b.add for b in m.m) else f"{p}.cv1", f"{p}.cv1", m.cv1)
        for j, b in enumerate(m.m):
            stream = BOTTLENECK.trace(t, f"{p}.m.{j}", b, stream)
        side = t.new_group(f"{p}.cv2", f"{p}.cv2", m.cv2)
        return t.conv(f"{p}.cv3", m.cv3, stream + side)


class BottleneckHandler(Handler):
    """cv1 is its own group; a residual Bottleneck's cv2 joins its input's group (the add), else its own."""

    module = Bottleneck

    @staticmethod
    def _adds(s):
        return s.arg(1, True) and s.c1_full == make_divisible(s.args[0] * s.gw, 8)

    def groups(self, s):
        full = make_divisible(s.args[0] * s.gw, 8)
        out = {} if self._adds(s) else {f"{s.prefix}.cv2": full}
        return {f"{s.prefix}.cv1": int(full * s.arg(3, 0.5)), **out}  # YAML args: [c2, shortcut, g, e]

    def build(self, s, w):
        full = make_divisible(s.args[0] * s.gw, 8)
        c2 = s.c1 if self._adds(s) else w[f"{s.prefix}.cv2"]  # the add keeps its input's channels
        return Bottleneck(s.c1, c2, *s.args[1:], c_=w[f"{s.prefix}.cv1"]), c2, full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        t.inputs[f"{p}.cv2"] = hidden
        if m.add:
            return t.join(layout, f"{p}.cv2", m.cv2, p)
        return t.new_group(f"{p}.cv2", f"{p}.cv2", m.cv2)


class FocusHandler(ConvHandler):
    """YOLOv5 <= v5.0's stem: one group, its output; the conv reads four space-to-depth copies of the input."""

    module = Focus

    def build(self, s, w):
        full, c2 = make_divisible(s.args[0] * s.gw, 8), w[s.prefix]
        return Focus(s.c1, c2, *s.args[1:]), c2, full, None

    def trace(self, t, p, m, layout):
        return t.conv(f"{p}.conv", m.conv, layout * 4, group_name=p)


class SPPFHandler(Handler):
    """cv1 (half the unpruned input, then pruned) and cv2 are groups; cv2 reads cat(cv1's output, one max-pool of
    it per kernel): four copies for SPPF, len(k) + 1 for SPP."""

    module = SPPF

    def groups(self, s):
        return {f"{s.prefix}.cv1": s.c1_full // 2, f"{s.prefix}.cv2": make_divisible(s.args[0] * s.gw, 8)}

    def build(self, s, w):
        full, c2 = make_divisible(s.args[0] * s.gw, 8), w[f"{s.prefix}.cv2"]
        return self.module(s.c1, c2, *s.args[1:], c_=w[f"{s.prefix}.cv1"]), c2, full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        return t.conv(f"{p}.cv2", m.cv2, hidden * (len(m.m) + 1 if isinstance(m, SPP) else 4))


class SPPHandler(SPPFHandler):
    module = SPP


class ClassifyHandler(Handler):
    """The 1280-wide hidden conv is a group; the linear's outputs (the classes) are never pruned."""

    module = Classify

    def groups(self, s):
        return {f"{s.prefix}.conv": CLASSIFY_HIDDEN}

    def build(self, s, w):
        c_ = w[f"{s.prefix}.conv"]
        c2 = s.args[0]
        return Classify(s.c1, *s.args, c_=c_), c2, c2, (c_, CLASSIFY_HIDDEN)  # report the hidden conv

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.conv", m.conv, layout)
        t.inputs[f"{p}.linear"] = hidden
        return []


BOTTLENECK = BottleneckHandler()
HANDLERS = (ConvHandler(), FocusHandler(), C3Handler(), BOTTLENECK, SPPFHandler(), SPPHandler(), ClassifyHandler())


def handler_for(module):
    """The handler of a block class or instance, or None for parameter-free layers (Concat, Upsample, ...)."""
    cls = module if isinstance(module, type) else type(module)
    return next((h for h in HANDLERS if issubclass(cls, h.module)), None)


class Tracer:
    """Walks a built classifier's layers, asking each block's handler for its groups and input layouts."""

    def __init__(self, model):
        self.model = model
        self.groups = {}  # name → ChannelGroup
        self.member_group = {}  # conv name → group name
        self.inputs = {}  # consumer (Conv or Linear) name → layout
        self.tied = {}  # conv name → layout its output is added to (a residual over a concat): it keeps those indices

    def new_group(self, name, conv_name, conv):
        self.groups[name] = ChannelGroup(name, [conv_name], conv.conv.out_channels)
        self.member_group[conv_name] = name
        return [(name, conv.conv.out_channels)]

    def join(self, layout, conv_name, conv, block_name):
        """Tie conv's output to `layout` (a residual add inside block `block_name`): it joins the layout's group,
        or, when the layout is a concat of several groups, keeps the concat's channel indices."""
        if len(layout) != 1 or layout[0][0] is None:
            self.tied[conv_name] = layout
            return layout
        (name, _), = layout
        self.groups[name].members.append(conv_name)
        self.groups[name].adds.append(block_name)
        self.member_group[conv_name] = name
        return layout

    def conv(self, prefix, conv, layout, group_name=None):
        self.inputs[prefix] = layout
        return self.new_group(group_name or prefix, prefix, conv)

    def trace(self):
        outputs = []
        yaml_dict = getattr(self.model, "yaml", None)
        image = [(None, yaml_dict.get("ch", 3) if isinstance(yaml_dict, dict) else 3)]
        for i, m in enumerate(self.model.model):
            f = m.f
            if f == -1:
                layout = outputs[-1] if outputs else image
            elif isinstance(f, int):
                layout = outputs[f]
            else:
                layout = [seg for j in f for seg in (outputs[j] if j != -1 else outputs[-1])]
            outputs.append(self.layer(f"model.{i}", m, layout))
        return self

    def layer(self, p, m, layout):
        handler = handler_for(m)
        if handler is not None:
            return handler.trace(self, p, m, layout)
        if isinstance(m, Concat) or not any(True for _ in m.parameters()):
            return layout  # parameter-free: passes channels through (Concat's layout is the joined input)
        raise TypeError(f"cannot prune layer {p} of type {type(m).__name__}")


def trace_model(model):
    return Tracer(model).trace()


def channel_groups(model):
    """The channel groups of a classifier, in layer order."""
    return list(trace_model(model).groups.values())
