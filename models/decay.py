"""Soft pruning: fade the filters that pruning will remove, then remove them exactly.

A hard cut of half of every layer leaves a trained classifier near chance, and the fine-tune spends its epochs
re-learning. Here the unpruned model keeps training while the outputs of the doomed filters are multiplied by a
factor that falls linearly from 1 to 0; the rest of the network learns to do without them. At 0 those filters
output exact zeros, so cutting them (`load_model` with the same scores) changes no output: the pruned model starts
where the faded one ended.

The fade acts on every conv's output through a forward hook, by the conv's output layout from the tracer (a group, a
slice of one, or a concat it is added to), so residual streams, C2f halves and the head are faded as one group.

While fading, the doomed filters and the weights that read them are frozen (their gradients are zeroed): otherwise the
optimizer learns to undo the fade (Adam grows whatever a shrinking factor multiplies), the doomed channels keep
carrying the signal, and it is lost all at once when the factor reaches 0.
"""

import torch

from models.graph import trace_model
from models.prune import select_channels


def kept_indices(groups, widths, scores):
    """{group: indices kept (ascending)} of the unpruned model's channel `groups` for the kept `widths`."""
    return {g.name: select_channels(scores[g.name], widths[g.name]) if widths[g.name] < g.channels
            else torch.arange(g.channels) for g in groups}


class ChannelFade:
    """Forward hooks that multiply the removed channels of every conv output by `self.factor` (1 → 0).

    attach() hooks a model (the trained one and its EMA copy share one fade); remove() takes every hook off.
    """

    def __init__(self, model, widths, scores):
        tracer = trace_model(model)
        kept = kept_indices(tracer.groups.values(), widths, scores)
        self.factor = 1.0
        self.removed = {}  # conv name → bool mask of its output channels that pruning removes
        for conv, layout in tracer.outputs.items():
            doomed = _doomed(layout, kept)
            if doomed.any():
                self.removed[conv] = doomed
        self.read = {}  # consumer (conv or linear) name → bool mask of its input channels that pruning removes
        for consumer, layout in tracer.inputs.items():
            doomed = _doomed(layout, kept)
            if doomed.any():
                self.read[consumer] = doomed
        self.handles = []

    def attach(self, model):
        modules = dict(model.named_modules())
        for name, doomed in self.removed.items():
            self.handles.append(modules[name].register_forward_hook(self._hook(doomed)))
        return self

    def freeze(self, model):
        """Zero the gradients of the doomed filters (conv rows, BatchNorm scale and shift) and of the weights that
        read doomed channels (conv and linear input columns) of the model being trained."""
        modules = dict(model.named_modules())
        for name in set(self.removed) | set(self.read):
            m = modules[name]
            out = ~self.removed.get(name, torch.zeros(0, dtype=torch.bool))
            inp = ~self.read.get(name, torch.zeros(0, dtype=torch.bool))
            weight = m.weight if isinstance(m, torch.nn.Linear) else m.conv.weight
            keep = torch.ones(weight.shape[:2], dtype=torch.bool)
            if len(out):
                keep &= out[:, None]
                for p in (m.bn.weight, m.bn.bias):
                    self.handles.append(p.register_hook(_masked(out)))
            if len(inp) and weight.shape[1] == len(inp):  # a grouped conv's inputs map one to one: rows say it all
                keep &= inp[None, :]
            self.handles.append(weight.register_hook(_masked(keep.view(*keep.shape, *[1] * (weight.dim() - 2)))))
        return self

    def _hook(self, doomed):
        cache = {}

        def fade(module, inputs, output):
            if self.factor == 1.0:
                return output
            key = (self.factor, output.device, output.dtype)
            if key not in cache:  # one (1, C, 1, 1) scale per factor value
                cache.clear()
                scale = torch.where(doomed, self.factor, 1.0).to(output.device, output.dtype)
                cache[key] = scale.view(1, -1, *([1] * (output.dim() - 2)))
            return output * cache[key]

        return fade

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def _doomed(layout, kept):
    """Bool mask over a layout's channels ((group or None, width) segments): True where pruning removes them."""
    parts = []
    for group, width in layout:
        doomed = torch.zeros(width, dtype=torch.bool)  # image channels (group None) stay
        if group is not None:
            doomed[:] = True
            doomed[kept[group]] = False
        parts.append(doomed)
    return torch.cat(parts)


def _masked(keep):
    def zero_doomed(grad):
        return grad * keep.to(grad.device, grad.dtype)

    return zero_doomed
