"""Channel groups, one handler per block type: the single place that knows a block's pruning rules.

A *channel group* is a set of conv outputs that must keep the same channel indices. Each handler declares,
for its block type:
- `groups(spec)`: the groups the block owns, {name: unpruned width} (names are stable ids such as
  'model.2.stream', 'model.4.m.1.cv1', 'model.9.conv': scores files, plans and tests use them);
- `build(spec, widths)`: the block built from one kept width per group;
- `trace(tracer, prefix, module, layout)`: on a built block, which conv belongs to which group and how each
  conv's input is laid out from its producers (a list of (group or None for image channels, width) segments
  in concat order).
- `tied(spec)`: groups that must keep equal widths (C2f's and C2PSA's two halves of one conv's output: ultralytics'
  forward splits it in equal parts).
`parse_model` (models/yolo.py) builds from `groups` + `build`; `trace_model` walks a built model with `trace`,
for `channel_groups` and `load_model`'s layouts. Parameter-free layers (Concat, Upsample) pass channels through.

A group's member may be a *slice* of a conv's output (C2f's halves); a group may be *fixed* (never pruned: the
attention stream of a C2PSA, whose width the heads' layout depends on). The tracer records every conv's output
layout ((group, width) segments), so weights map and costs count the same way for whole and split outputs.
"""

import math
from dataclasses import dataclass, field

from models.common import C3, SPP, SPPF, Bottleneck, Classify, Concat, Conv, Focus
from models.ultralytics_blocks import C2PSA, C2f, C3k, C3k2

CLASSIFY_HIDDEN = 1280  # Classify's hidden conv width (efficientnet_b0 size), the prunable part of the head
ULTRALYTICS_PLAN = "ultralytics"  # a YAML's `plan:` value: keep every width ultralytics' YAML cannot say


@dataclass
class ChannelGroup:
    name: str  # stable id, e.g. 'model.2.stream', 'model.4.m.1.cv1', 'model.9.conv'
    members: list = field(default_factory=list)  # qualified names of the Conv modules whose outputs are tied
    channels: int = 0  # output width in the traced model
    adds: list = field(default_factory=list)  # residual modules whose outputs are this group's maps after an add
    slices: dict = field(default_factory=dict)  # member → (start, stop) of its conv's output, for split outputs
    fixed: bool = False  # never pruned (its width is tied to something outside the channel order)

    def span(self, member):
        """The part of `member`'s output channels that belongs to this group."""
        return slice(*self.slices[member]) if member in self.slices else slice(None)


@dataclass
class BlockSpec:
    """What parse_model knows about one YAML row when it builds it."""

    prefix: str  # 'model.4'
    args: list  # YAML args, resolved ('nc' → the class count), before width_multiple
    n: int  # repeats after depth_multiple
    c1: int  # kept input channels
    c1_full: int  # unpruned input channels
    gw: float  # width_multiple
    kind: type = None  # the YAML row's module class (C2f or C3k2 share a handler)
    max_channels: float = float("inf")  # ultralytics' cap on a layer's YAML width, before width_multiple
    ultralytics: bool = False  # a YOLOv8/YOLO11/YOLO26 YAML (ultralytics' conventions where they differ)

    def arg(self, i, default):
        return self.args[i] if len(self.args) > i else default

    @property
    def c2_full(self):
        """The block's unpruned output width: YOLOv5's and ultralytics' rule for the YAML's first argument."""
        return make_divisible(min(self.args[0], self.max_channels) * self.gw, 8)


def make_divisible(x, divisor=8):
    """Smallest multiple of divisor ≥ x (YOLOv5's width rule)."""
    return math.ceil(x / divisor) * divisor


class Handler:
    """Pruning rules of one block type (see the module docstring)."""

    module = None
    repeats_inside = False  # the YAML's n is the block's own repeat count (C3, C2f), not a stack of n blocks

    def tied(self, s):
        """Tuples of group names that must keep equal widths."""
        return []

    def yaml_derived(self, s):
        """Groups whose width ultralytics' YAML cannot say (its modules derive them): under a YAML's
        `plan: ultralytics` they keep their full width, so that ultralytics can rebuild the pruned model."""
        return []

    def derived(self, s):
        """{group: (parent group, ratio)}: under `plan: ultralytics`, widths ultralytics computes from another
        width of the block, int(parent's width x ratio); parent None = the block's input width. Those groups are
        not allocated: they follow their parent (models/budget.py CostModel; models/yolo.py parse_model)."""
        return {}

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
        return {s.prefix: s.c2_full}

    def build(self, s, w):
        full, c2 = s.c2_full, w[s.prefix]
        return Conv(s.c1, c2, *s.args[1:]), c2, full, None

    def trace(self, t, p, m, layout):
        return t.conv(p, m, layout)


class C3Handler(Handler):
    """cv1 and every added m[i].cv2 form the residual stream; each m[i].cv1, cv2, cv3 is its own group; cv3
    reads cat(last bottleneck's output, cv2)."""

    module = C3
    repeats_inside = True

    @staticmethod
    def _names(p, n, shortcut):
        stream = f"{p}.stream" if shortcut else f"{p}.cv1"
        outs = [stream] * n if shortcut else [f"{p}.m.{j}.cv2" for j in range(n)]
        return stream, [f"{p}.m.{j}.cv1" for j in range(n)], outs

    def groups(self, s):
        full = s.c2_full
        hidden = int(full * s.arg(3, 0.5))  # YAML args: [c2, shortcut, g, e]
        stream, inner, outs = self._names(s.prefix, s.n, s.arg(1, True))
        return {stream: hidden, **{g: hidden for g in inner + outs}, f"{s.prefix}.cv2": hidden,
                f"{s.prefix}.cv3": full}

    def build(self, s, w):
        p, full = s.prefix, s.c2_full
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
        return s.arg(1, True) and s.c1_full == s.c2_full

    def groups(self, s):
        full = s.c2_full
        out = {} if self._adds(s) else {f"{s.prefix}.cv2": full}
        return {f"{s.prefix}.cv1": int(full * s.arg(3, 0.5)), **out}  # YAML args: [c2, shortcut, g, e]

    def build(self, s, w):
        full = s.c2_full
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
        full, c2 = s.c2_full, w[s.prefix]
        return Focus(s.c1, c2, *s.args[1:]), c2, full, None

    def trace(self, t, p, m, layout):
        return t.conv(f"{p}.conv", m.conv, layout * 4, group_name=p)


class SPPFHandler(Handler):
    """cv1 (half the unpruned input, then pruned) and cv2 are groups; cv2 reads cat(cv1's output, one max-pool of
    it per pool): n + 1 copies for SPPF (YAML args [c2, k, n, shortcut]), len(k) + 1 for SPP. A residual SPPF
    (YOLO26's shortcut) adds its input to cv2's output: cv2 joins its input's group."""

    module = SPPF

    @staticmethod
    def _adds(s):
        return s.arg(3, False) and s.c1_full == s.c2_full

    def groups(self, s):
        out = {} if self._adds(s) else {f"{s.prefix}.cv2": s.c2_full}
        return {f"{s.prefix}.cv1": s.c1_full // 2, **out}

    def build(self, s, w):
        c2 = s.c1 if self._adds(s) else w[f"{s.prefix}.cv2"]
        act1 = not (s.ultralytics and len(s.args) > 2)  # ultralytics leaves cv1 unactivated but in legacy YAML rows
        block = SPPF(s.c1, c2, s.arg(1, 5), s.arg(2, 3), s.arg(3, False), c_=w[f"{s.prefix}.cv1"], act1=act1)
        return block, c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        t.inputs[f"{p}.cv2"] = hidden * (getattr(m, "n", 3) + 1)
        if getattr(m, "add", False):
            return t.join(layout, f"{p}.cv2", m.cv2, p)
        return t.new_group(f"{p}.cv2", f"{p}.cv2", m.cv2)


class SPPHandler(SPPFHandler):
    module = SPP

    @staticmethod
    def _adds(s):
        return False

    def build(self, s, w):
        c2 = w[f"{s.prefix}.cv2"]
        return SPP(s.c1, c2, *s.args[1:], c_=w[f"{s.prefix}.cv1"]), c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.cv1", m.cv1, layout)
        return t.conv(f"{p}.cv2", m.cv2, hidden * (len(m.m) + 1))


class ClassifyHandler(Handler):
    """The 1280-wide hidden conv is a group; the linear's outputs (the classes) are never pruned."""

    module = Classify

    def groups(self, s):
        return {f"{s.prefix}.conv": CLASSIFY_HIDDEN}

    def yaml_derived(self, s):
        return [f"{s.prefix}.conv"]  # ultralytics' Classify is 1280 wide, whatever its YAML says

    def build(self, s, w):
        c_ = w[f"{s.prefix}.conv"]
        c2 = s.args[0]
        return Classify(s.c1, *s.args, c_=c_), c2, c2, (c_, CLASSIFY_HIDDEN)  # report the hidden conv

    def trace(self, t, p, m, layout):
        hidden = t.conv(f"{p}.conv", m.conv, layout, fixed=t.ultralytics_plan)
        t.inputs[f"{p}.linear"] = hidden
        return []


class C2fHandler(Handler):
    """ultralytics' C2f and C3k2. cv1's output is two halves (separate groups, equal widths): the first goes straight
    to cv2; the second feeds the inner blocks. With residual Bottlenecks the second half and every inner cv2 form the
    stream; C3k inner blocks (C3k2 at the m/l/x scales) are C3s with a group per output. cv2 reads every half and
    inner output, concatenated."""

    module = C2f
    repeats_inside = True

    @staticmethod
    def _options(s):
        """(shortcut, expansion, c3k, bottleneck expansion) from the YAML arguments of a C2f or a C3k2."""
        if s.kind is C3k2:  # [c2, c3k, e, attn, g, shortcut]
            return s.arg(5, True), s.arg(2, 0.5), s.arg(1, False), 0.5
        return s.arg(1, False), s.arg(3, 0.5), False, 1.0  # C2f: [c2, shortcut, g, e]

    @staticmethod
    def _halves(p, adds):
        return f"{p}.cv1.a", f"{p}.stream" if adds else f"{p}.cv1.b"

    def tied(self, s):
        shortcut, _, c3k, _ = self._options(s)
        return [self._halves(s.prefix, shortcut and not c3k)]

    def groups(self, s):
        p, full = s.prefix, s.c2_full
        shortcut, e, c3k, eb = self._options(s)
        c = int(full * e)
        a, b = self._halves(p, shortcut and not c3k)
        out = {a: c, b: c}
        for j in range(s.n):
            q = f"{p}.m.{j}"
            if c3k:  # a C3k(c, c, 2): hidden int(c * 0.5) throughout, its output c
                stream, inner, outs = C3Handler._names(q, 2, shortcut)
                out.update({g: c // 2 for g in [stream, *inner, *outs, f"{q}.cv2"]}, **{f"{q}.cv3": c})
            else:
                out[f"{q}.cv1"] = int(c * eb)
                if not shortcut:
                    out[f"{q}.cv2"] = c
        return {**out, f"{p}.cv2": full}

    def derived(self, s):
        """ultralytics builds each inner block from the hidden width c: a Bottleneck(c, c, e) (e: 1 in C2f, 0.5 in
        C3k2), a C3k(c, c) whose own hidden is c // 2 throughout."""
        p = s.prefix
        shortcut, _, c3k, eb = self._options(s)
        b = self._halves(p, shortcut and not c3k)[1]
        rules = {}
        for j in range(s.n):
            q = f"{p}.m.{j}"
            if c3k:
                stream, inner, outs = C3Handler._names(q, 2, shortcut)
                rules.update({g: (b, 0.5) for g in [stream, *inner, *outs, f"{q}.cv2"]}, **{f"{q}.cv3": (b, 1.0)})
            else:
                rules[f"{q}.cv1"] = (b, eb)
                if not shortcut:
                    rules[f"{q}.cv2"] = (b, 1.0)
        return rules

    def build(self, s, w):
        p = s.prefix
        shortcut, e, c3k, _ = self._options(s)
        a, b = self._halves(p, shortcut and not c3k)
        g = s.arg(4, 1) if s.kind is C3k2 else s.arg(2, 1)
        blocks, prev = [], w[b]
        for j in range(s.n):
            q = f"{p}.m.{j}"
            if c3k:
                stream, inner, outs = C3Handler._names(q, 2, shortcut)
                blocks.append(C3k(prev, w[f"{q}.cv3"], 2, shortcut, g, c_=w[stream], cv2_=w[f"{q}.cv2"],
                                  m_=[(w[h], w[o]) for h, o in zip(inner, outs)]))
                prev = w[f"{q}.cv3"]
            else:
                c2 = prev if shortcut else w[f"{q}.cv2"]
                blocks.append(Bottleneck(prev, c2, shortcut, g, c_=w[f"{q}.cv1"], k=(3, 3)))
                prev = c2
        c2 = w[f"{p}.cv2"]
        if s.kind is C3k2:
            block = C3k2(s.c1, c2, s.n, c3k, e, s.arg(3, False), g, shortcut, c_=w[a], m=blocks)
        else:
            block = C2f(s.c1, c2, s.n, shortcut, g, e, c_=w[a], m=blocks)
        return block, c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        t.inputs[f"{p}.cv1"] = layout
        first = m.m[0]
        a, b = t.split(f"{p}.cv1", m.cv1, self._halves(p, isinstance(first, Bottleneck) and first.add))
        outs, y = [a, b], b
        for j, block in enumerate(m.m):
            y = (C3_HANDLER if isinstance(block, C3) else BOTTLENECK).trace(t, f"{p}.m.{j}", block, y)
            outs.append(y)
        return t.conv(f"{p}.cv2", m.cv2, [seg for o in outs for seg in o])


class C2PSAHandler(Handler):
    """ultralytics' C2PSA: cv1's halves and the attention stream (the second half plus every added attention and
    feed-forward output) are fixed, because the attention's view of its input ties the stream's width to its heads;
    each PSABlock's feed-forward hidden width and cv2's output are pruned."""

    module = C2PSA
    repeats_inside = True

    def groups(self, s):
        full = s.c2_full
        c = int(full * s.arg(1, 0.5))  # YAML args: [c2, e]
        return {**{f"{s.prefix}.m.{j}.ffn.0": 2 * c for j in range(s.n)}, f"{s.prefix}.cv2": full}

    def yaml_derived(self, s):
        return [f"{s.prefix}.m.{j}.ffn.0" for j in range(s.n)]  # ultralytics' PSABlock: feed-forward 2c wide

    def derived(self, s):
        return {f"{s.prefix}.cv2": (None, 1.0)}  # ultralytics' C2PSA asserts its output width equals its input's

    def build(self, s, w):
        p, full = s.prefix, s.c2_full
        e = s.arg(1, 0.5)
        block = C2PSA(s.c1, w[f"{p}.cv2"], s.n, e, c_=int(full * e), ffn_=[w[f"{p}.m.{j}.ffn.0"] for j in range(s.n)])
        return block, w[f"{p}.cv2"], full, None

    def trace(self, t, p, m, layout):
        t.inputs[f"{p}.cv1"] = layout
        a, stream = t.split(f"{p}.cv1", m.cv1, [f"{p}.cv1.a", f"{p}.stream"], fixed=True)
        for j, block in enumerate(m.m):
            q = f"{p}.m.{j}"
            attn = block.attn
            t.conv(f"{q}.attn.qkv", attn.qkv, stream, fixed=True)
            dim = attn.pe.conv.out_channels
            v = t.conv(f"{q}.attn.pe", attn.pe, [(None, dim)], fixed=True)  # depthwise over the values: fixed channels
            t.inputs[f"{q}.attn.proj"] = v
            t.join(stream, f"{q}.attn.proj", attn.proj, q)
            hidden = t.conv(f"{q}.ffn.0", block.ffn[0], stream, fixed=t.ultralytics_plan)
            t.inputs[f"{q}.ffn.1"] = hidden
            t.join(stream, f"{q}.ffn.1", block.ffn[1], q)
        return t.conv(f"{p}.cv2", m.cv2, a + stream)


BOTTLENECK, C3_HANDLER = BottleneckHandler(), C3Handler()
HANDLERS = (ConvHandler(), FocusHandler(), C3_HANDLER, BOTTLENECK, SPPFHandler(), SPPHandler(), ClassifyHandler(),
            C2fHandler(), C2PSAHandler())


def handler_for(module):
    """The handler of a block class or instance, or None for parameter-free layers (Concat, Upsample, ...)."""
    cls = module if isinstance(module, type) else type(module)
    return next((h for h in HANDLERS if issubclass(cls, h.module)), None)


class Tracer:
    """Walks a built classifier's layers, asking each block's handler for its groups and input layouts."""

    def __init__(self, model):
        self.model = model
        self.groups = {}  # name → ChannelGroup
        self.inputs = {}  # consumer (Conv or Linear) name → layout
        self.outputs = {}  # conv name → layout of its output channels (its group, its halves, or a concat it is added to)
        self.ties = []  # tuples of groups that must keep equal widths (the halves of one conv's output)
        yaml_dict = getattr(model, "yaml", None)
        # `plan: ultralytics`: the widths ultralytics derives itself are not pruned (Handler.yaml_derived), and
        # those it computes from another follow it (Handler.derived; parse_model leaves the rules on each layer)
        self.ultralytics_plan = isinstance(yaml_dict, dict) and yaml_dict.get("plan") == ULTRALYTICS_PLAN
        self.derived = {}  # group → (parent group, ratio)

    def new_group(self, name, conv_name, conv, fixed=False):
        self.groups[name] = ChannelGroup(name, [conv_name], conv.conv.out_channels, fixed=fixed)
        self.outputs[conv_name] = [(name, conv.conv.out_channels)]
        return self.outputs[conv_name]

    def split(self, conv_name, conv, names, fixed=False):
        """conv's output split into equal parts, one group each (C2f's chunk, C2PSA's split); their layouts."""
        width = conv.conv.out_channels // len(names)
        for k, name in enumerate(names):
            self.groups[name] = ChannelGroup(name, [conv_name], width, slices={conv_name: (k * width, (k + 1) * width)},
                                             fixed=fixed)
        self.outputs[conv_name] = [(name, width) for name in names]
        if not fixed:
            self.ties.append(tuple(names))
        return [[(name, width)] for name in names]

    def join(self, layout, conv_name, conv, block_name):
        """Tie conv's output to `layout` (a residual add inside block `block_name`): it joins the layout's group,
        or, when the layout is a concat of several groups, keeps the concat's channel indices."""
        self.outputs[conv_name] = layout
        if len(layout) != 1 or layout[0][0] is None:
            return layout
        (name, _), = layout
        self.groups[name].members.append(conv_name)
        self.groups[name].adds.append(block_name)
        return layout

    def conv(self, prefix, conv, layout, group_name=None, fixed=False):
        self.inputs[prefix] = layout
        return self.new_group(group_name or prefix, prefix, conv, fixed)

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
        for g, (parent, ratio) in getattr(m, "derived", {}).items():
            if parent is None:  # the block's input: one group
                (parent, _), = layout
            self.derived[g] = (parent, ratio)
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
