"""Block specs: one registration per block type holds everything the project knows about it.

A `BlockSpec` says, for one module class: the YAML name(s) a model YAML uses for it, its argument schema, its repeat
and scale rules, its pruning handler, the names checkpoints pickle it under (YOLOv5, ultralytics) and its ultralytics
export counterpart. `parse_model` (models/yolo.py), the tracer (models/graph.py), the unpickling allowlist
(models/io/checkpoints.py) and the ultralytics export (models/io/ultralytics_export.py) read the registry; nothing
else lists block types. The built-in specs sit next to their handlers in models/blocks/ (Detect's in models/yolo.py).

Registration is code: `register()` is called when a project module is imported, or by a test. A checkpoint cannot
register anything (the unpickler only constructs classes already registered), and a spec may only name a
torch.nn.Module subclass under pickled names of YOLOv5 (`models.`) or ultralytics (`ultralytics.`), so registering
never widens what a load accepts beyond module classes, nor shadows torch's own globals.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch.nn as nn

PICKLE_PREFIXES = {"yolov5": "models.", "ultralytics": "ultralytics."}


def make_divisible(x, divisor=8):
    """Smallest multiple of divisor ≥ x (YOLOv5's width rule)."""
    return math.ceil(x / divisor) * divisor


class Args:
    """A YAML row's argument schema: where each named argument sits in the row's `args` (the output channels are
    args[0]) and the value a row that leaves it out gets. The names the project reads are `shortcut`, `e` (expansion),
    `n` (a count inside the block other than the row's repeats, e.g. SPPF's pools) and `groups`; a block may name
    more (C3k2's `c3k`)."""

    def __init__(self, defaults=None, **positions):
        self.positions = {"channels": 0, **positions}
        self.defaults = dict(defaults or {})

    def get(self, args, name, default=None):
        at = self.positions.get(name)
        if at is not None and len(args) > at:
            return args[at]
        return self.defaults.get(name, default)

    def __repr__(self):
        return f"Args({self.positions}, defaults={self.defaults})"


@dataclass(frozen=True)
class BlockSpec:
    """Everything the project knows about one module class (see the module docstring)."""

    cls: type  # this project's class
    names: tuple = ()  # the YAML module names that build it; empty: an inner or pickle-only class, not a YAML row
    args: Args = field(default_factory=Args)  # YAML argument schema
    handler: Optional["Handler"] = None  # pruning rules; None: no filters to prune (a YAML rate must be 0)
    repeats_inside: bool = False  # the row's n is the block's own repeat count (C3, C2f), not a stack of n blocks
    scale: Optional[Callable] = None  # (args, YAML dict) → args: a scale's quirk (C3k2's c3k at the m/l/x scales)
    outputs: Optional[Callable] = None  # rows without a handler: (args, f, ch, ch_full) → (args, kept, unpruned)
    grouped_reads_input: bool = True  # with g > 1 its input must stay unpruned too (not C3: its grouped convs
    # read only its own hidden widths)
    yolov5: tuple = ()  # the names YOLOv5 checkpoints pickle it under ('models.common.Conv')
    ultralytics: Optional[str] = None  # ultralytics' class of the same layout: its pickled name and export counterpart
    stands_in_for: tuple = ()  # more ultralytics pickled names it loads as, without their layout (never exported)
    ultralytics_row: Optional[Callable] = None  # (built layer, n, YAML args) → (n, args): the row ultralytics'
    # parse_model builds at the layer's (pruned) widths (models/io/ultralytics_yaml.py)

    @property
    def name(self):
        return self.names[0] if self.names else self.cls.__name__

    def pickled_names(self):
        """Every pickled name that unpickles onto cls."""
        return (*self.yolov5, *((self.ultralytics,) if self.ultralytics else ()), *self.stands_in_for)


_SPECS = []  # registration order; lookups walk it


def register(spec):
    """Add `spec` to the registry (refused if it clashes with a registered one, or names something unsafe)."""
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, nn.Module)):
        raise TypeError(f"a block spec's class must be a torch.nn.Module subclass, not {spec.cls!r}")
    for kind, prefix in PICKLE_PREFIXES.items():
        names = spec.yolov5 if kind == "yolov5" else (*((spec.ultralytics,) if spec.ultralytics else ()),
                                                      *spec.stands_in_for)
        bad = [n for n in names if not n.startswith(prefix)]
        if bad:
            raise ValueError(f"{spec.name}: {kind} pickled names must start with '{prefix}', not {', '.join(bad)}")
    for other in _SPECS:
        clash = (other.cls is spec.cls and "class") or (set(other.names) & set(spec.names) and "YAML name") or (
            set(other.pickled_names()) & set(spec.pickled_names()) and "pickled name")
        if clash:
            raise ValueError(f"block spec {spec.name}: its {clash} is already registered by {other.name}'s")
    _SPECS.append(spec)
    return spec


def unregister(spec):
    _SPECS.remove(spec)


@contextmanager
def registered(*specs):
    """The specs registered for the duration of a with-block (tests add a block type this way and leave none)."""
    for spec in specs:
        register(spec)
    try:
        yield specs
    finally:
        for spec in specs:
            if spec in _SPECS:
                unregister(spec)


def all_specs():
    return tuple(_SPECS)


def spec_named(name):
    """The spec a YAML module name builds, or None."""
    return next((s for s in _SPECS if name in s.names), None)


def yaml_names():
    return sorted(n for s in _SPECS for n in s.names)


def spec_of(module):
    """The spec of a class or instance: its own, else its nearest registered base class's; None when unregistered."""
    cls = module if isinstance(module, type) else type(module)
    by_class = {s.cls: s for s in _SPECS}
    return next((by_class[c] for c in cls.__mro__ if c in by_class), None)


def handler_for(module):
    """The pruning handler of a block class or instance (the nearest registered class with one), or None for
    parameter-free layers (Concat, Upsample, ...)."""
    cls = module if isinstance(module, type) else type(module)
    by_class = {s.cls: s for s in _SPECS if s.handler is not None}
    return next((by_class[c].handler for c in cls.__mro__ if c in by_class), None)


def pickled_globals():
    """The unpickling allowlist's block entries: a class pickled under its own path as the class, otherwise
    (class, pickled name) (torch's form for "load this name as that class")."""
    entries = []
    for s in _SPECS:
        own = f"{s.cls.__module__}.{s.cls.__qualname__}"
        entries += [s.cls if name == own else (s.cls, name) for name in s.pickled_names()]
    return entries


def ultralytics_counterpart_names():
    """{this project's class: ultralytics' dotted class name} for every block ultralytics has a counterpart of."""
    return {s.cls: s.ultralytics for s in _SPECS if s.ultralytics}


@dataclass
class Row:
    """What parse_model knows about one YAML row when it builds it (handlers read it)."""

    prefix: str  # 'model.4'
    args: list  # YAML args, resolved ('nc' → the class count), before width_multiple
    n: int  # repeats after depth_multiple
    c1: int  # kept input channels
    c1_full: int  # unpruned input channels
    gw: float  # width_multiple
    kind: type = None  # the YAML row's module class (C2f or C3k2 share a handler)
    max_channels: float = float("inf")  # ultralytics' cap on a layer's YAML width, before width_multiple
    ultralytics: bool = False  # a YOLOv8/YOLO11/YOLO26 YAML (ultralytics' conventions where they differ)
    schema: Args = field(default_factory=Args)  # the row's argument schema (its spec's)

    def arg(self, i, default):
        return self.args[i] if len(self.args) > i else default

    def get(self, name, default=None):
        """A named YAML argument, by the row's schema."""
        return self.schema.get(self.args, name, default)

    @property
    def c2_full(self):
        """The block's unpruned output width: YOLOv5's and ultralytics' rule for the YAML's first argument."""
        return make_divisible(min(self.args[0], self.max_channels) * self.gw, 8)


class Handler:
    """Pruning rules of one block type (models/graph.py's docstring says what each method answers)."""

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
        not allocated: they follow their parent (models/costs.py CostModel; models/yolo.py parse_model)."""
        return {}

    def groups(self, s):
        raise NotImplementedError

    def build(self, s, w):
        """(block, kept output channels, unpruned output channels, (kept, unpruned) width to report)."""
        raise NotImplementedError

    def trace(self, t, p, m, layout):
        raise NotImplementedError
