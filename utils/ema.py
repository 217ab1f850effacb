"""Exponential moving average of model weights (YOLOv5's ModelEMA).

The average is what gets validated and shipped: it is smoother than the raw weights. The decay ramps up
from 0 as d = decay * (1 - exp(-updates / tau)), so early averages are not dominated by the random init.
"""

import math
from copy import deepcopy

import torch

from utils.distributed import de_parallel


EMA_TAU = 2000  # YOLOv5's ramp, in optimizer steps


class ModelEMA:
    """Keeps `self.ema`, a frozen eval-mode copy of the model whose floats track the model's."""

    def __init__(self, model, decay=0.9999, tau=EMA_TAU, updates=0):
        self.ema = deepcopy(de_parallel(model)).eval()
        self.updates = updates  # number of update() calls, drives the decay ramp
        self.decay_max, self.tau = decay, tau
        for p in self.ema.parameters():
            p.requires_grad_(False)
        # the float entries (parameters and BN statistics), fixed objects: load_state_dict copies into them
        state = self.ema.state_dict()
        self.float_keys = [k for k, v in state.items() if v.dtype.is_floating_point]
        self.floats = [state[k] for k in self.float_keys]

    def decay(self, updates):
        return self.decay_max * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model):
        """One EMA step towards model's current weights (parameters and float buffers such as BN stats)."""
        self.updates += 1
        d = self.decay(self.updates)
        msd = de_parallel(model).state_dict()
        # ema += (1 - d) * (model - ema) for all tensors in one call: a Python loop of two ops per tensor cost
        # ~5 ms a step for yolov5n-cls on CPU, more than the optimizer (the multi-tensor op torch's own
        # swa_utils EMA uses)
        torch._foreach_lerp_(self.floats, [msd[k] for k in self.float_keys], 1 - d)

    def update_attr(self, model, include=(), exclude=("process_group", "reducer")):
        """Copy plain attributes (names, yaml, ...) from model; include limits it to those names."""
        for k, v in de_parallel(model).__dict__.items():
            if (include and k not in include) or k.startswith("_") or k in exclude:
                continue
            setattr(self.ema, k, v)
