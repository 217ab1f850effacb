"""Widths for a budget: a command's --target-flops/--target-params/--target-latency resolved to a plan.

The target is checked before any work (check_reachable, chosen_target); plan_for_target then allocates the widths
(models/allocation.py) on the unpruned architecture, as a Plan (models/plan.py) that writes itself as a model YAML.
"""

from models.allocation import MIN_SHARE, allocate, allocate_latency, check_target, format_plan, out_of_reach
from models.costs import CostModel, choices
from models.latency import PlanLatency, default_runtime
from models.plan import Plan
from utils.log import LOGGER, colorstr

TARGETS = ("flops", "params", "latency")


def chosen_target(target_flops=None, target_params=None, target_latency=None, rate=None):
    """(metric, fraction) of the one --target-* option given, or None; a one-line error for two of them or for a
    target next to --rate (both describe the widths)."""
    given = [(m, v) for m, v in zip(TARGETS, (target_flops, target_params, target_latency)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give one budget, not {' and '.join(f'--target-{m}' for m, _ in given)}")
    if given and rate is not None:
        raise ValueError(f"--target-{given[0][0]} chooses the widths itself: give it or --rate, not both")
    return (given[0][0], check_target(given[0][1], f"target-{given[0][0]}")) if given else None


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


def plan_for_target(cfg, metric, target, imgsz, nc=None, drop=None, timing=None, device="cpu", runtime=None,
                    batch=1, cache_dir=None, min_share=None):
    """Allocate widths of cfg's unpruned architecture for `--target-<metric> target`; logs the plan table.
    For latency: measured on `runtime` (default: ONNX Runtime when installed) at `batch`, the latency table cached in
    `cache_dir` (`timing` replaces the measurement, for tests)."""
    if metric not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not '{metric}'")
    costs = CostModel(cfg, imgsz, nc)
    min_share = MIN_SHARE if min_share is None else min_share
    if metric == "latency":
        if timing is None:
            timing = PlanLatency(cfg, imgsz, nc, runtime or default_runtime(), batch, device, cache_dir, costs)
        plan = allocate_latency(costs, target, timing, drop, min_share=min_share)
    else:
        plan = allocate(costs, target, metric, drop, min_share=min_share)
    LOGGER.info(f"\n{colorstr('widths:')} allocated for --target-{metric} {target:g} at {imgsz} px\n"
                + format_plan(costs, plan, "plan"))
    return Plan(plan)
