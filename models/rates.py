"""Compress rates: parsing `--rate` / YAML specs, and the rate → kept-width rule.

A rate r in [0, 1) is the fraction of a channel group's filters that is removed. One rate per YAML
layer; the head (Classify) counts as a layer.
"""

import math
import re

_FLOAT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TERM = re.compile(rf"^\[\s*({_FLOAT}(?:\s*,\s*{_FLOAT})*)\s*,?\s*\](?:\s*\*\s*(\d+))?$")


def kept_width(channels, rate):
    """Channels kept when `rate` of `channels` is pruned.

    Rule: rate 0 keeps all. Otherwise keep round(channels * (1 - rate)), at least 1; groups of 16 or
    more channels round to the nearest multiple of 8 (at least 8), as YOLOv5's make_divisible does for
    widths, so pruned convolutions stay vector-friendly and fast. Never more than `channels`.
    """
    if rate <= 0:
        return channels
    keep = max(1, math.floor(channels * (1.0 - rate) + 0.5))
    if channels >= 16:
        keep = max(8, 8 * math.floor(keep / 8 + 0.5))
    return min(channels, keep)


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
