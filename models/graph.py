"""Channel groups: the tracer that walks a built model and asks each block's handler for its groups and layouts.

A *channel group* is a set of conv outputs that must keep the same channel indices. Each block type's handler
(registered with its spec, models/specs.py; the built-in ones in models/blocks/) declares:
- `groups(row)`: the groups the block owns, {name: unpruned width} (names are stable ids such as
  'model.2.stream', 'model.4.m.1.cv1', 'model.9.conv': scores files, plans and tests use them);
- `build(row, widths)`: the block built from one kept width per group;
- `trace(tracer, prefix, module, layout)`: on a built block, which conv belongs to which group and how each
  conv's input is laid out from its producers (a list of (group or None for image channels, width) segments
  in concat order).
- `tied(row)`: groups that must keep equal widths (C2f's and C2PSA's two halves of one conv's output: ultralytics'
  forward splits it in equal parts).
`parse_model` (models/yolo.py) builds from `groups` + `build`; `trace_model` walks a built model with `trace`,
for `channel_groups` and `load_model`'s layouts. Parameter-free layers (Concat, Upsample) pass channels through.

A group's member may be a *slice* of a conv's output (C2f's halves); a group may be *fixed* (never pruned: the
attention stream of a C2PSA, whose width the heads' layout depends on). The tracer records every conv's output
layout ((group, width) segments), so weights map and costs count the same way for whole and split outputs.
"""

from dataclasses import dataclass, field

import models.blocks  # noqa: F401 (registers the built-in block specs the tracer asks)
from models.specs import handler_for

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
        if not any(True for _ in m.parameters()):
            return layout  # parameter-free: passes channels through (Concat's layout is the joined input)
        raise TypeError(f"cannot prune layer {p} of type {type(m).__name__}")


def trace_model(model):
    return Tracer(model).trace()


def channel_groups(model):
    """The channel groups of a classifier, in layer order."""
    return list(trace_model(model).groups.values())
