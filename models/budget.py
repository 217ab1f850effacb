"""Widths for a budget: per-group sensitivity curves and the allocation of widths.

A *plan* is {channel group name: kept width} (models/graph.py names the groups); groups it does not name keep
their unpruned width. Its FLOPs and parameters come from models/costs.py, its latency from models/latency.py.
Allocation (`allocate`): start from the unpruned widths and repeatedly take 8 channels from the group whose
step costs the least predicted accuracy per unit of cost saved, until the budget is met; then give channels
back, best predicted accuracy per unit of cost first, while the budget still holds.
"""

import math
from pathlib import Path

import torch

from models.costs import WIDTH_STEP, CostModel, choices, uniform_plan
from models.rates import kept_width

MIN_SHARE = 0.5  # allocate(): floor of a group's width, as a share of its uniform width (benchmarks/recipes.py)
TARGETS = ("flops", "params", "latency")


# ------------------------------------------------------------------------------------------------- costs
# ------------------------------------------------------------------------------------------------- predictors
def monotone_drops(widths, drops):
    """Predicted accuracy drop at each width, made non-increasing in width (a narrower group never predicts a
    smaller drop than a wider one: measured curves are noisy)."""
    out, worst = {}, 0.0
    for w, d in sorted(zip(widths, drops), key=lambda t: -t[0]):
        worst = max(worst, d)
        out[w] = worst
    return out


class SensitivityDrop:
    """Predicted accuracy drop of a group at a width, interpolated linearly in the kept fraction from its
    sensitivity curve (rows of group, width, full, top1, with the unpruned accuracy `base`)."""

    def __init__(self, table, base):
        self.curves = {}
        for g, rows in table.groupby("group"):
            full = int(rows["full"].iloc[0])
            points = monotone_drops([full, *rows["width"]], [0.0, *(base - rows["top1"])])
            self.curves[g] = (full, sorted(points.items()))

    def __call__(self, group, width):
        if group not in self.curves:
            return 0.0
        full, points = self.curves[group]
        if width >= full:
            return 0.0
        ws = [w for w, _ in points]
        if width <= ws[0]:  # below the narrowest measured width: extrapolate to a total loss at 0 channels
            w0, d0 = points[0]
            return d0 + (1.0 - d0) * (w0 - width) / max(w0, 1)
        for (w1, d1), (w2, d2) in zip(points, points[1:]):
            if w1 <= width <= w2:
                return d1 + (d2 - d1) * (width - w1) / (w2 - w1)
        return 0.0


class ScoreDrop:
    """Predicted drop from filter scores alone: the share of a group's normalised score mass (scores / the group's
    highest) that the pruned channels carry, so groups of every size and criterion scale compare."""

    def __init__(self, scores):
        self.removed = {}
        for g, s in scores.items():
            s = torch.as_tensor(s, dtype=torch.float64)
            s = (s - s.min()) / (s.max() - s.min()).clamp_min(1e-12)
            low = torch.sort(s).values
            self.removed[g] = torch.cat([torch.zeros(1, dtype=torch.float64), low.cumsum(0)]) / len(s)

    def __call__(self, group, width):
        cum = self.removed.get(group)
        if cum is None or width >= len(cum) - 1:  # no scores, or at least as wide as the scored model: nothing removed
            return 0.0
        return float(cum[len(cum) - 1 - width])


# ------------------------------------------------------------------------------------------------- allocation
def check_target(value, name="target"):
    if value is None or isinstance(value, bool) or not (0 < float(value) <= 1) or math.isnan(float(value)):
        raise ValueError(f"--{name.replace('_', '-')} must be a fraction of the unpruned model in (0, 1], not {value}")
    return float(value)


def check_reachable(cfg, metric, target, imgsz, nc=None):
    """A one-line ValueError, before any ranking or training, when --target-flops/--target-params `target` is below
    what the narrowest plan of cfg costs (latency is measured during allocation, so it is not checked here)."""
    target = check_target(target, f"target-{metric}")
    if metric in ("flops", "params"):
        costs = CostModel(cfg, imgsz, nc)
        floor = costs.fraction({g: choices(c)[0] for g, c in costs.full.items()}, metric)
        if floor > target:
            raise out_of_reach(metric, target, floor)
    return target


def out_of_reach(metric, target, floor):
    """The one-line error for a budget below what the narrowest plan costs."""
    how = " (predicted by this runtime's latency table)" if metric == "latency" else ""
    return ValueError(f"--target-{metric} {target:g} is out of reach: the narrowest plan allowed (every channel group "
                      f"at its narrowest allowed width, {WIDTH_STEP} channels at least) still costs {floor:.3f} of the "
                      f"unpruned model's {metric}{how}")


def allocate(costs, target, metric="flops", drop=None, tolerance=0.05, cost_fn=None, min_share=None, step=WIDTH_STEP):
    """Widths {group: width} whose `metric` cost is in [(1 - tolerance)·target, target] of the unpruned model's
    and whose summed predicted drop (drop(group, width), default: the share of channels removed) is small.

    min_share: no group narrower than this share of its width in the uniform plan of the same cost (the commands
    pass MIN_SHARE through plan_for_target; 0 or None: unbounded). Summed one-group-at-a-time drops do not see that
    many groups cut to a few channels together leave too little to fine-tune; the floor keeps the allocation a
    bounded reshuffle of uniform.

    step: the width grid (models.latency.fast_width_step for latency plans).

    `cost_fn(plan)` returns the plan's cost as a fraction of the unpruned model's (default: costs.fraction for
    'flops'/'params'; a measured latency for 'latency'). Raises ValueError (one line) when even the narrowest
    plan costs more than the target.
    """
    target = check_target(target, f"target-{metric}")
    group_drop = drop or (lambda g, w: 1 - w / costs.full[g])
    cost_fn = cost_fn or (lambda plan: costs.fraction(plan, metric))
    # A unit is a group, or groups that must keep equal widths (a split's halves); it moves as one.
    grid = {u: choices(costs.full[u[0]], step) for u in costs.units}
    if min_share:
        try:
            _, uniform = uniform_rate_for(costs, target, metric, cost_fn)
        except ValueError:  # not even the narrowest uniform plan: the budget is out of reach
            raise out_of_reach(metric, target, cost_fn({g: ws[0] for u, ws in grid.items() for g in u})) from None
        grid = {u: [w for w in ws if w >= min_share * uniform[u[0]]] or ws[-1:] for u, ws in grid.items()}
    narrowest = {g: ws[0] for u, ws in grid.items() for g in u}
    floor = cost_fn(narrowest)
    if floor > target:
        raise out_of_reach(metric, target, floor)
    plan = dict(costs.full)
    pos = {u: len(ws) - 1 for u, ws in grid.items()}

    def drop(u, w):
        return sum(group_drop(g, w) for g in u)

    def width(p, u):
        return p[u[0]]

    def step(u, d):  # the plan with unit u moved d steps along its width grid
        return {**plan, **{g: grid[u][pos[u] + d] for g in u}}

    current = cost_fn(plan)
    while current > target:  # narrow: the cheapest accuracy per unit of cost saved first
        best = None
        for g in grid:
            if pos[g] == 0:
                continue
            trial = step(g, -1)
            saved = current - cost_fn(trial)
            if saved <= 0:
                continue
            loss = drop(g, width(trial, g)) - drop(g, width(plan, g))
            key = (loss / saved, -saved)
            if best is None or key < best[0]:
                best = (key, g)
        if best is None:
            break
        g = best[1]
        plan, pos[g] = step(g, -1), pos[g] - 1
        current = cost_fn(plan)
    while True:  # widen back while the budget holds: the greatest accuracy per unit of cost first
        best = None
        for g in grid:
            if pos[g] == len(grid[g]) - 1:
                continue
            trial = step(g, 1)
            cost = cost_fn(trial)
            if cost > target:
                continue
            gain = drop(g, width(plan, g)) - drop(g, width(trial, g))
            key = (gain / max(cost - current, 1e-12), gain)
            if best is None or key > best[0]:
                best = (key, g, cost)
        if best is None:
            break
        g, current = best[1], best[2]
        plan, pos[g] = step(g, 1), pos[g] + 1
    if current < (1 - tolerance) * target:
        raise ValueError(f"--target-{metric} {target:g}: the width grid cannot land within {tolerance:.0%} below the "
                         f"target (best {current:.3f})")
    return plan


def uniform_rate_for(costs, target, metric="flops", cost_fn=None):
    """The plan of the smallest uniform rate grid point (0.01 steps) whose cost is at most target, for comparisons
    (cost_fn(plan): the plan's cost fraction; default costs.fraction for 'flops'/'params')."""
    cost_fn = cost_fn or (lambda plan: costs.fraction(plan, metric))
    for r in (i / 100 for i in range(0, 100)):
        plan = uniform_plan(costs.full, r)
        if cost_fn(plan) <= target:
            return r, plan
    raise ValueError(f"no uniform rate reaches {metric} {target:g}")


def plan_table(costs, plan, metric="flops"):
    """Rows (group, old width, new width, kept fraction, share of the plan's FLOPs) for printing."""
    w = costs.widths(plan)
    share = {}
    for out, layout, f, *_ in costs.terms:
        if out is None:
            continue
        c_in = costs.width_of(layout, w)
        for g, width in out:  # a split output: each part its own FLOPs
            if g is not None:
                share[g] = share.get(g, 0) + f * w[g] * c_in
    total = costs.cost(plan)["flops"]
    return [(g, c, w[g], w[g] / c, share.get(g, 0) / total) for g, c in costs.full.items()]


def format_plan(costs, plan, title="plan"):
    """The plan as a table: group, old → new width, kept fraction, FLOPs share; plus totals."""
    lines = [f"{title}: {'group':<18}{'width':>13}{'kept':>7}{'FLOPs':>7}"]
    for g, old, new, kept, share in plan_table(costs, plan):
        lines.append(f"{'':<{len(title) + 2}}{g:<18}{f'{old} → {new}':>13}{kept:>7.0%}{share:>7.1%}")
    f, p = costs.fraction(plan, "flops"), costs.fraction(plan, "params")
    lines.append(f"{'':<{len(title) + 2}}total: {f:.1%} of the unpruned FLOPs, {p:.1%} of its parameters")
    return "\n".join(lines)


def allocate_latency(costs, target, timing, drop=None, min_share=None, tolerance=0.1, corrections=4):
    """Widths whose measured latency is in [(1 - tolerance)·target, target] of the unpruned model's, on the runtime
    of `timing` (models.latency.PlanLatency, or anything with its table() and fractions()).

    The accuracy-drop-per-latency allocation runs on the latency table's prediction (each conv layer timed alone at
    several widths); the plan is then measured whole against the unpruned model, and the target the
    table is asked for is corrected by the measured/predicted ratio, up to `corrections` times. The first plan in the
    band is returned; failing that, the one measured closest to the target, with a warning."""
    from utils.log import LOGGER

    target = check_target(target, "target-latency")
    table = timing.table(log=LOGGER.info)
    step = getattr(timing, "width_step", WIDTH_STEP)

    def predicted(plan):
        return table.fraction(plan, costs)

    aim, tried = target, []
    for _ in range(corrections):
        try:
            plan = allocate(costs, aim, "latency", drop, tolerance=1.0, cost_fn=predicted, min_share=min_share,
                            step=step)
        except ValueError:
            if not tried:  # the target itself is out of the table's reach
                raise
            break  # a correction asked for less than the narrowest plan: keep what was measured
        measured = timing.fractions([plan])[0]
        tried.append((abs(measured - target), measured, plan))
        LOGGER.info(f"latency plan: predicted {predicted(plan):.3f}, measured {measured:.3f} of the unpruned latency "
                    f"(target {target:g})")
        if (1 - tolerance) * target <= measured <= target:
            return plan
        aim = min(1.0, aim * target / measured)
    _, measured, plan = min(tried, key=lambda t: t[:2])
    LOGGER.warning(f"WARNING ⚠️ --target-latency {target:g}: no plan measured within {tolerance:.0%} under it; the "
                   f"closest measured {measured:.3f} of the unpruned latency on this runtime")
    return plan


def read_sensitivity(sensitivity):
    """The table of classify/sensitivity.py, from its csv (or a DataFrame, checked); a one-line ValueError for a file
    that is missing or is not such a table (so commands can check --sensitivity before any work)."""
    import pandas as pd

    table = sensitivity
    if not isinstance(sensitivity, pd.DataFrame):
        if not Path(sensitivity).is_file():
            raise FileNotFoundError(f"--sensitivity file '{sensitivity}' not found (make one with classify/sensitivity.py)")
        try:
            table = pd.read_csv(sensitivity)
        except (ValueError, UnicodeDecodeError) as e:  # pandas' parser and empty-data errors are ValueErrors
            raise ValueError(f"--sensitivity {sensitivity} is not a csv table ({type(e).__name__}): make one with "
                             f"classify/sensitivity.py") from None
    missing = {"group", "width", "full", "top1"} - set(table.columns)
    if missing:
        raise ValueError(f"--sensitivity {sensitivity} is not a sensitivity table (no {', '.join(sorted(missing))} "
                         f"column): make one with classify/sensitivity.py")
    return table


def drop_predictor(scores=None, sensitivity=None):
    """How allocation predicts a group's accuracy loss at a width: from a sensitivity table (a DataFrame or the
    csv of classify/sensitivity.py) when given, else from filter scores, else None (the share of channels removed)."""
    if sensitivity is not None:
        table = read_sensitivity(sensitivity)
        base = table.attrs.get("base_top1", table["base_top1"].iloc[0] if "base_top1" in table else table["top1"].max())
        return SensitivityDrop(table, float(base))
    if scores is not None:
        return ScoreDrop(scores)
    return None


def planned_yaml(cfg, widths):
    """cfg's model YAML dict (a path, name or dict) with `widths` as its plan: its own rate and widths replaced."""
    from models.yolo import load_yaml

    return {**{k: v for k, v in load_yaml(cfg).items() if k not in ("rate", "widths")}, "rate": 0.0, "widths": widths}


def plan_for_target(cfg, metric, target, imgsz, nc=None, drop=None, timing=None, device="cpu", runtime=None,
                    batch=1, cache_dir=None, min_share=None):
    """Allocate widths of cfg's unpruned architecture for `--target-<metric> target`; logs the plan table.
    For latency: measured on `runtime` (default: ONNX Runtime when installed) at `batch`, the latency table cached in
    `cache_dir` (`timing` replaces the measurement, for tests)."""
    from utils.log import LOGGER, colorstr

    if metric not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not '{metric}'")
    costs = CostModel(cfg, imgsz, nc)
    min_share = MIN_SHARE if min_share is None else min_share
    if metric == "latency":
        if timing is None:
            from models.latency import PlanLatency, default_runtime

            timing = PlanLatency(cfg, imgsz, nc, runtime or default_runtime(), batch, device, cache_dir, costs)
        plan = allocate_latency(costs, target, timing, drop, min_share=min_share)
    else:
        plan = allocate(costs, target, metric, drop, min_share=min_share)
    LOGGER.info(f"\n{colorstr('widths:')} allocated for --target-{metric} {target:g} at {imgsz} px\n"
                + format_plan(costs, plan, "plan"))
    return plan


# ------------------------------------------------------------------------------------------------- sensitivity
SENSITIVITY_RATES = tuple(round(0.1 * i, 1) for i in range(1, 10))


def top1(model, batches):
    """Top-1 accuracy of `model` over a list of (images, labels) batches."""
    correct = seen = 0
    model.eval()
    with torch.no_grad():
        for images, labels in batches:
            correct += (model(images).argmax(1) == labels).sum().item()
            seen += len(labels)
    return correct / max(seen, 1)


def silence(model, group, dropped):
    """Zero the BatchNorm scale and shift of the dropped channels of every member of `group`: SiLU(0) = 0, so the
    model computes exactly what the pruned model would (the dead-filter equivalence the tests check), without a
    rebuild."""
    with torch.no_grad():
        for name in group.members:
            bn = model.get_submodule(name).bn
            span = group.span(name)
            bn.weight[span][dropped] = 0
            bn.bias[span][dropped] = 0


def sensitivity(model, scores, eval_batches, calib_batches, rates=SENSITIVITY_RATES, groups=None, progress=True):
    """Accuracy after pruning one channel group at a time at each rate (its lowest-scored channels, as load_model
    would drop them), BatchNorm statistics re-estimated on `calib_batches`, no fine-tune.

    Returns a DataFrame with columns group, rate, width, full, top1 and base_top1 (the unpruned model's accuracy
    after the same recalibration).
    Widths follow the --rate rule (kept_width); a width that repeats within a group is evaluated once.
    """
    import pandas as pd
    from utils.log import progress_bar

    from models.criteria import recalibrate_bn
    from models.prune import channel_groups, select_channels

    original = {k: v.clone() for k, v in model.state_dict().items()}
    # The reference is the unpruned model recalibrated the same way: re-estimating BatchNorm on a few batches
    # alone moves accuracy, and that shift must not count as the pruning's.
    recalibrate_bn(model, calib_batches, batches=len(calib_batches))
    base = top1(model, eval_batches)
    chosen = [g for g in channel_groups(model) if not g.fixed and (groups is None or g.name in groups)]
    rows = []
    for g in progress_bar(chosen, desc="sensitivity", disable=not progress):
        measured = {g.channels: base}
        for r in rates:
            w = kept_width(g.channels, r)
            if w not in measured:
                model.load_state_dict(original)
                keep = select_channels(scores[g.name], w)
                dropped = torch.ones(g.channels, dtype=torch.bool)
                dropped[keep] = False
                silence(model, g, dropped)
                recalibrate_bn(model, calib_batches, batches=len(calib_batches))
                measured[w] = top1(model, eval_batches)
            rows.append({"group": g.name, "rate": r, "width": w, "full": g.channels, "top1": measured[w]})
    model.load_state_dict(original)
    table = pd.DataFrame(rows)
    table["base_top1"] = base
    table.attrs["base_top1"] = base
    return table



def chosen_target(target_flops=None, target_params=None, target_latency=None, rate=None):
    """(metric, fraction) of the one --target-* option given, or None; a one-line error for two of them or for a
    target next to --rate (both describe the widths)."""
    given = [(m, v) for m, v in zip(TARGETS, (target_flops, target_params, target_latency)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give one budget, not {' and '.join(f'--target-{m}' for m, _ in given)}")
    if given and rate is not None:
        raise ValueError(f"--target-{given[0][0]} chooses the widths itself: give it or --rate, not both")
    return (given[0][0], check_target(given[0][1], f"target-{given[0][0]}")) if given else None
