"""A pruned model's architecture as a YAML that ultralytics' own parse_model builds exactly.

ultralytics' `Model.train()` rebuilds the model from `model.yaml` and copies in only the weights whose shapes fit, so
a file whose YAML describes the unpruned model trains an unpruned, mostly re-initialised one. Here every layer gets
explicit arguments read from the built layer (its output channels, its blocks' hidden ratio `e`, its repeats, C3k2's
c3k switch) under a neutral scale (depth 1, width 1, no channel cap), so parse_model needs no multiplier. Whether
that YAML really rebuilds the model is not assumed: ultralytics builds it and every tensor shape is compared (some
widths ultralytics derives itself: Classify's 1280, a PSA block's feed-forward 2c and heads c // 64, block outputs
rounded to multiples of 8).
"""

from copy import deepcopy

import torch

from models.specs import spec_of

NEUTRAL_SCALE = "p"  # not m/l/x, for which ultralytics forces C3k2's c3k on: the YAML says it per layer
NO_CAP = 1 << 30  # max_channels: never binding


def layer_row(layer, n, args):
    """(repeats, YAML arguments) that make ultralytics build `layer` (this project's module, built from a row with
    repeats n and arguments `args`, as written for the unpruned model) at its widths: its spec's rule."""
    spec = spec_of(layer)
    if spec is None or spec.ultralytics_row is None:
        raise ValueError(f"no explicit-width YAML rule for {type(layer).__name__}")
    return spec.ultralytics_row(layer, n, args)


def explicit_yaml(model, d):
    """YAML dict `d` (model's ultralytics architecture) with every layer's widths written out for parse_model."""
    rows = d["backbone"] + d["head"]
    out = []
    for layer, (f, n, name, args) in zip(model.model, rows):
        repeats, row_args = layer_row(layer, n, args)
        out.append([f, repeats, name, row_args])
    nb = len(d["backbone"])
    dropped = ("backbone", "head", "scales", "scale", "rate", "widths")  # the widths are in the rows now
    return {**{k: v for k, v in d.items() if k not in dropped},
            "scales": {NEUTRAL_SCALE: [1.0, 1.0, NO_CAP]}, "scale": NEUTRAL_SCALE,
            "backbone": out[:nb], "head": out[nb:]}


def rebuild_mismatch(yaml_dict, layers):
    """How ultralytics' ClassificationModel(yaml_dict) differs from `layers` (the exported ultralytics layers), as
    one phrase naming the first differing tensor or attention setting, or None when it builds the same model."""
    from ultralytics.nn.modules.block import Attention
    from ultralytics.nn.tasks import ClassificationModel

    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel("WARNING")  # its model summary, printed even when not verbose
    try:
        with torch.device("meta"):
            built = ClassificationModel(deepcopy(yaml_dict), ch=yaml_dict.get("channels", 3), verbose=False).model
    except Exception as e:  # ultralytics' own checks (C2PSA asserts c1 == c2, ...)
        return f"ultralytics cannot build it ({type(e).__name__}: {e})"
    finally:
        LOGGER.setLevel(level)
    ours = {k: v.shape for k, v in layers.state_dict().items()}
    theirs = {k: v.shape for k, v in built.state_dict().items()}
    for k in [*ours, *(k for k in theirs if k not in ours)]:  # layer order: the first difference is named
        if ours.get(k) != theirs.get(k):
            return (f"model.{k}: {tuple(ours[k]) if k in ours else 'absent'} here, "
                    f"{tuple(theirs[k]) if k in theirs else 'absent'} as ultralytics builds it")
    for (name, a), b in zip(layers.named_modules(), built.modules()):
        if isinstance(a, Attention) and (a.num_heads, a.key_dim) != (b.num_heads, b.key_dim):
            return (f"model.{name}: {a.num_heads} heads of key size {a.key_dim} here, {b.num_heads} of "
                    f"{b.key_dim} as ultralytics builds it")
    return None
