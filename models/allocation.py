"""Allocation of widths to a budget: predicted accuracy drops per group and the walk that trades them for cost.

A *plan* is {channel group name: kept width} (models/graph.py names the groups); groups it does not name keep
their unpruned width. Its FLOPs and parameters come from models/costs.py, its latency from models/latency.py.
Allocation (`allocate`): start from the unpruned widths and repeatedly take 8 channels from the group whose
step costs the least predicted accuracy per unit of cost saved, until the budget is met; then give channels
back, best predicted accuracy per unit of cost first, while the budget still holds.
"""

import math

import torch

from models.costs import choices
from models.plan import Plan
from models.rates import WIDTH_STEP
from models.sensitivity import read_sensitivity
from utils.log import LOGGER

MIN_SHARE = 0.5  # allocate(): floor of a group's width, as a share of its uniform width (benchmarks/recipes.py)


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


# ------------------------------------------------------------------------------------------------- allocation
def check_target(value, name="target"):
    if value is None or isinstance(value, bool) or not (0 < float(value) <= 1) or math.isnan(float(value)):
        raise ValueError(f"--{name.replace('_', '-')} must be a fraction of the unpruned model in (0, 1], not {value}")
    return float(value)


def out_of_reach(metric, target, floor):
    """The one-line error for a budget below what the narrowest plan costs."""
    how = " (predicted by this runtime's latency table)" if metric == "latency" else ""
    return ValueError(f"--target-{metric} {target:g} is out of reach: the narrowest plan allowed (every channel group "
                      f"at its narrowest allowed width, {WIDTH_STEP} channels at least) still costs {floor:.3f} of the "
                      f"unpruned model's {metric}{how}")


def width_grid(costs, target, metric, cost_fn, min_share=None, step=WIDTH_STEP):
    """{unit: its allowed widths, narrowest first}. A unit is a group, or groups that must keep equal widths (a
    split's halves); it moves as one. min_share: widths below that share of the unit's width in the uniform plan
    of the same cost are left out (a unit keeps at least its widest)."""
    grid = {u: choices(costs.full[u[0]], step) for u in costs.units}
    if min_share:
        try:
            _, uniform = uniform_rate_for(costs, target, metric, cost_fn)
        except ValueError:  # not even the narrowest uniform plan: the budget is out of reach
            raise out_of_reach(metric, target, cost_fn({g: ws[0] for u, ws in grid.items() for g in u})) from None
        grid = {u: [w for w in ws if w >= min_share * uniform[u[0]]] or ws[-1:] for u, ws in grid.items()}
    return grid


class PlanWalk:
    """A plan moved one unit at a time along the units' width grids, from the unpruned widths."""

    def __init__(self, full, grid):
        self.grid, self.plan = grid, dict(full)
        self.pos = {u: len(ws) - 1 for u, ws in grid.items()}

    def moved(self, u, d):
        """The plan with unit u moved d steps along its width grid (the walk itself stays)."""
        return {**self.plan, **{g: self.grid[u][self.pos[u] + d] for g in u}}

    def move(self, u, d):
        self.plan, self.pos[u] = self.moved(u, d), self.pos[u] + d


def narrow(walk, unit_drop, cost_fn, target):
    """Narrow while over the target, the cheapest accuracy per unit of cost saved first; returns the plan's cost."""
    current = cost_fn(walk.plan)
    while current > target:
        best = None
        for u in walk.grid:
            if walk.pos[u] == 0:
                continue
            trial = walk.moved(u, -1)
            saved = current - cost_fn(trial)
            if saved <= 0:
                continue
            loss = unit_drop(u, trial[u[0]]) - unit_drop(u, walk.plan[u[0]])
            key = (loss / saved, -saved)
            if best is None or key < best[0]:
                best = (key, u)
        if best is None:
            break
        walk.move(best[1], -1)
        current = cost_fn(walk.plan)
    return current


def widen(walk, unit_drop, cost_fn, target, current):
    """Widen back while the budget holds, the greatest accuracy per unit of cost first; returns the plan's cost."""
    while True:
        best = None
        for u in walk.grid:
            if walk.pos[u] == len(walk.grid[u]) - 1:
                continue
            trial = walk.moved(u, 1)
            cost = cost_fn(trial)
            if cost > target:
                continue
            gain = unit_drop(u, walk.plan[u[0]]) - unit_drop(u, trial[u[0]])
            key = (gain / max(cost - current, 1e-12), gain)
            if best is None or key > best[0]:
                best = (key, u, cost)
        if best is None:
            return current
        walk.move(best[1], 1)
        current = best[2]


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
    grid = width_grid(costs, target, metric, cost_fn, min_share, step)
    floor = cost_fn({g: ws[0] for u, ws in grid.items() for g in u})
    if floor > target:
        raise out_of_reach(metric, target, floor)

    def unit_drop(u, w):
        return sum(group_drop(g, w) for g in u)

    walk = PlanWalk(costs.full, grid)
    current = widen(walk, unit_drop, cost_fn, target, narrow(walk, unit_drop, cost_fn, target))
    if current < (1 - tolerance) * target:
        raise ValueError(f"--target-{metric} {target:g}: the width grid cannot land within {tolerance:.0%} below the "
                         f"target (best {current:.3f})")
    return walk.plan


def uniform_rate_for(costs, target, metric="flops", cost_fn=None):
    """The plan of the smallest uniform rate grid point (0.01 steps) whose cost is at most target, for comparisons
    (cost_fn(plan): the plan's cost fraction; default costs.fraction for 'flops'/'params')."""
    cost_fn = cost_fn or (lambda plan: costs.fraction(plan, metric))
    for r in (i / 100 for i in range(0, 100)):
        plan = Plan.uniform(costs.full, r)
        if cost_fn(plan) <= target:
            return r, plan
    raise ValueError(f"no uniform rate reaches {metric} {target:g}")


def allocate_latency(costs, target, timing, drop=None, min_share=None, tolerance=0.1, corrections=4):
    """Widths whose measured latency is in [(1 - tolerance)·target, target] of the unpruned model's, on the runtime
    of `timing` (models.latency.PlanLatency, or anything with its table() and fractions()).

    The accuracy-drop-per-latency allocation runs on the latency table's prediction (each conv layer timed alone at
    several widths); the plan is then measured whole against the unpruned model, and the target the
    table is asked for is corrected by the measured/predicted ratio, up to `corrections` times. The first plan in the
    band is returned; failing that, the one measured closest to the target, with a warning."""
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


# ------------------------------------------------------------------------------------------------- printing
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
