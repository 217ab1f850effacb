"""Compress rates: parsing `--rate` / YAML specs, and the rate → kept-width rule.

A rate r in [0, 1) is the fraction of a channel group's filters that is removed. One rate per YAML
layer; the head (Classify) counts as a layer.
"""

import math
import re

_FLOAT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TERM = re.compile(rf"^\[\s*({_FLOAT}(?:\s*,\s*{_FLOAT})*)\s*,?\s*\](?:\s*\*\s*(\d+))?$")


WIDTH_STEP = 8  # the width grid: groups of GRID_FROM+ channels keep multiples of it (vector-friendly, fast convs)
GRID_FROM = 16


def on_grid(channels, keep):
    """`keep` channels of a group of `channels` on the width grid: at least 1; for groups of GRID_FROM or more, the
    nearest multiple of WIDTH_STEP (at least WIDTH_STEP), as YOLOv5's make_divisible does for widths. Never more
    than `channels`."""
    keep = max(1, keep)
    if channels >= GRID_FROM:
        keep = max(WIDTH_STEP, WIDTH_STEP * math.floor(keep / WIDTH_STEP + 0.5))
    return min(channels, keep)


def kept_width(channels, rate):
    """Channels kept when `rate` of `channels` is pruned: all for rate 0, else round(channels * (1 - rate)) on the
    width grid (on_grid)."""
    if rate <= 0:
        return channels
    return on_grid(channels, math.floor(channels * (1.0 - rate) + 0.5))


def _expand_expression(text):
    """HRank's `[0.]+[0.3]*4+[0.5]*5` syntax, parsed without eval."""
    values = []
    for term in text.split("+"):
        match = _TERM.match(term.strip())
        if not match:
            raise ValueError(f"cannot parse term {term.strip()!r}")
        items = [float(v) for v in re.split(r"\s*,\s*", match.group(1).strip())]
        values += items * int(match.group(2) or 1)
    return values


def _to_list(spec):
    if isinstance(spec, bool):
        raise ValueError(f"not a rate: {spec!r}")
    if isinstance(spec, (int, float)):
        return float(spec), True
    if isinstance(spec, (list, tuple)):
        return [float(v) for v in spec], False
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise ValueError("empty rate string")
        if re.fullmatch(_FLOAT, text):
            return float(text), True
        if "[" in text:
            return _expand_expression(text), False
        parts = [p for p in re.split(r"[\s,]+", text) if p]
        if all(re.fullmatch(_FLOAT, p) for p in parts):
            return [float(p) for p in parts], False
        raise ValueError(f"cannot parse {text!r}")
    raise ValueError(f"unsupported rate type {type(spec).__name__}")


def parse_rates(spec, layer_names):
    """Rates for each layer from a float, a list, a comma list or an HRank expression.

    `layer_names` are labels such as '0 Conv'; they appear in errors so a user can count layers.
    Raises ValueError with a one-line message naming the expected count and the layers.
    """
    n = len(layer_names)
    expected = f"expected a float, a comma list or an expression like '[0.]+[0.3]*{max(n - 2, 1)}+[0.]' giving {n} rates in [0, 1), one per layer ({', '.join(layer_names)})"
    if spec is None:
        return [0.0] * n
    try:
        values, uniform = _to_list(spec)
    except (ValueError, TypeError) as e:
        raise ValueError(f"bad rate {spec!r}: {e}; {expected}") from None
    if uniform:
        values = [values] * n
    if len(values) != n:
        raise ValueError(f"bad rate {spec!r}: got {len(values)} rates; {expected}")
    bad = [f"layer {name}: {v:g}" for name, v in zip(layer_names, values) if not (0.0 <= v < 1.0) or math.isnan(v)]
    if bad and uniform:
        raise ValueError(f"bad rate {spec!r}: {values[0]:g} is outside [0, 1); {expected}")
    if bad:
        raise ValueError(f"bad rate {spec!r}: out of [0, 1) at {', '.join(bad)}; {expected}")
    return values
