"""The cost of a width plan (FLOPs and parameters) without building it with weights.

- `plan_cost`: FLOPs (as torch.utils.flop_counter counts them: convolutions and matmuls) and parameters of a
  plan, from a build on the meta device (no weights, no memory);
- `CostModel`: the same numbers as sums over convs of (output width × summed input widths × a constant), the
  constants read once from a meta-device trace, so the allocator can price thousands of plans per second;
- `choices`: the widths a group may take (models/plan.py Plan.uniform: the plan of one rate).
"""

import torch

from models.graph import trace_model
from models.rates import GRID_FROM, WIDTH_STEP
from utils.model_info import count_flops


def meta_model(cfg, widths=None, nc=None, rate=0.0):
    """The classifier of `cfg` with plan `widths` (None: at `rate`, by default unpruned; the YAML's own rates and plan
    are replaced unless both are None) built on the meta device: shapes only."""
    from models.yolo import ClassificationModel

    with torch.device("meta"):
        return ClassificationModel(cfg, nc=nc, rate=rate, widths=widths or None).eval()


def plan_cost(cfg, widths=None, imgsz=224, nc=None):
    """{'flops', 'params'} of plan `widths` on cfg's architecture, from a meta-device build."""
    model = meta_model(cfg, widths, nc)
    return {"flops": count_flops(model, imgsz), "params": sum(p.numel() for p in model.parameters())}


class CostModel:
    """FLOPs and parameters of any plan of one architecture without building it.

    Every conv costs 2·H·W·k²/groups · out · in FLOPs and k²/groups · out · in + 2 · out parameters (kernel and
    BatchNorm's weight and bias), with `out` its group's width and `in` the summed widths of its input layout;
    the linear costs 2 · nc · in FLOPs and (in + 1) · nc parameters. H, W, k and groups are read from one forward
    of the unpruned model on the meta device, so the totals are exactly what flop_counter counts on a real build
    (plus a constant for what runs at fixed widths: C2PSA's attention products). A conv whose output is split in
    halves counts both halves' widths; groups that must keep equal widths move together (`units`).
    """

    def __init__(self, cfg, imgsz=224, nc=None):
        model = meta_model(cfg, None, nc)
        tracer = trace_model(model)
        self.derived = tracer.derived  # group → (parent, ratio): follows its parent (`plan: ultralytics`)
        # the groups a plan may narrow
        self.full = {g.name: g.channels for g in tracer.groups.values() if not g.fixed and g.name not in self.derived}
        self.fixed = {g.name: g.channels for g in tracer.groups.values() if g.fixed}
        self.derived_full = {g.name: g.channels for g in tracer.groups.values() if g.name in self.derived}
        tied = {g: tie for tie in tracer.ties for g in tie}
        self.units = list(dict.fromkeys(tied.get(g, (g,)) for g in self.full))  # groups that narrow together
        self.imgsz = imgsz
        spatial = {}
        hooks = [model.get_submodule(n).conv.register_forward_hook(
            lambda m, i, o, n=n: spatial.__setitem__(n, o.shape[-2] * o.shape[-1]))
            for n in tracer.inputs if not n.endswith(".linear")]
        with torch.no_grad():
            model(torch.zeros(1, model.yaml.get("ch", 3), imgsz, imgsz, device="meta"))
        for h in hooks:
            h.remove()
        self.terms = []  # (output layout or None, input layout, FLOPs per out·in, params per out·in, params per out)
        for name, layout in tracer.inputs.items():
            if name.endswith(".linear"):
                nc_out = model.get_submodule(name).out_features
                self.terms.append((None, layout, 2 * nc_out, nc_out, 0, nc_out))
                continue
            conv = model.get_submodule(name).conv
            k2 = conv.kernel_size[0] * conv.kernel_size[1] / conv.groups
            self.terms.append((tracer.outputs[name], layout, 2 * spatial[name] * k2, k2, 2, 0))
        # What is not a conv or the linear (C2PSA's attention products) runs at fixed widths: a constant.
        self.extra_flops = 0
        self.extra_flops = count_flops(model, imgsz, model.yaml.get("ch", 3)) - self.cost({})["flops"]
        self.unpruned = self.cost({})

    def widths(self, plan):
        w = {**self.fixed, **{g: plan.get(g, c) for g, c in self.full.items()}}
        for g, (parent, ratio) in self.derived.items():  # as parse_model derives them
            w[g] = min(self.derived_full[g], max(1, int(w[parent] * ratio)))
        return w

    @staticmethod
    def width_of(layout, w):
        return sum(width if g is None else w[g] for g, width in layout)

    def cost(self, plan):
        """{'flops', 'params'} of `plan` (missing groups unpruned)."""
        w = self.widths(plan)
        flops = params = 0
        for out, layout, f, p_in, p_out, const in self.terms:
            c_in = self.width_of(layout, w)
            c_out = 1 if out is None else self.width_of(out, w)  # the linear's nc is folded into its constants
            flops += f * c_out * c_in
            params += p_in * c_out * c_in + p_out * c_out + const
        return {"flops": int(round(flops)) + self.extra_flops, "params": int(round(params))}

    def fraction(self, plan, metric):
        return self.cost(plan)[metric] / self.unpruned[metric]


def choices(full, step=WIDTH_STEP):
    """Kept widths a group of `full` channels may take: multiples of `step` (8; a latency plan may ask for coarser)
    up to full (groups of 16+, at least 8), else 1..full."""
    if full >= GRID_FROM:
        return sorted({*range(step, full + 1, step), full} | ({WIDTH_STEP} if step > WIDTH_STEP else set()))
    return list(range(1, full + 1))

