"""Optimizer and learning-rate schedule, as YOLOv5 sets them up."""

import torch
import torch.nn as nn

from utils.log import LOGGER, colorstr

OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSProp")
_NORM_LAYERS = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))


def multi_tensor(device):
    """True where torch's multi-tensor (foreach) kernels should be used: torch picks them by itself on CUDA only, but
    on CPU they also replace a Python loop over the tensors (yolov5n-cls: optimizer step 3.7 → 2.6 ms, gradient
    clipping 2.8 → 2.0 ms). None (torch's own choice) elsewhere."""
    return True if torch.device(device).type in {"cuda", "cpu"} else None


def smart_optimizer(model, name="Adam", lr=0.001, momentum=0.9, decay=1e-5):
    """YOLOv5's three parameter groups: biases and norm-layer weights get no weight decay, other weights do.

    Decay on BN gammas or biases only shrinks scales and offsets that the next layer would undo.
    """
    weights, norm_weights, biases = [], [], []
    for module in model.modules():
        for p_name, p in module.named_parameters(recurse=False):
            if p_name == "bias":
                biases.append(p)
            elif p_name == "weight" and isinstance(module, _NORM_LAYERS):
                norm_weights.append(p)
            else:
                weights.append(p)
    foreach = multi_tensor(next(model.parameters()).device)  # create the optimizer after moving the model
    if name == "Adam":
        optimizer = torch.optim.Adam(biases, lr=lr, betas=(momentum, 0.999), foreach=foreach)
    elif name == "AdamW":
        optimizer = torch.optim.AdamW(biases, lr=lr, betas=(momentum, 0.999), weight_decay=0.0, foreach=foreach)
    elif name == "RMSProp":
        optimizer = torch.optim.RMSprop(biases, lr=lr, momentum=momentum, foreach=foreach)
    elif name == "SGD":
        optimizer = torch.optim.SGD(biases, lr=lr, momentum=momentum, nesterov=True, foreach=foreach)
    else:
        raise ValueError(f"optimizer '{name}' not known: use one of {', '.join(OPTIMIZERS)}")
    optimizer.add_param_group({"params": weights, "weight_decay": decay})
    optimizer.add_param_group({"params": norm_weights, "weight_decay": 0.0})
    LOGGER.info(f"{colorstr('optimizer:')} {type(optimizer).__name__}(lr={lr}) with parameter groups "
                f"{len(norm_weights)} weight(decay=0.0), {len(weights)} weight(decay={decay}), {len(biases)} bias")
    return optimizer


def lr_scheduler(optimizer, epochs, lrf=0.01, cos_lr=False):
    """YOLOv5 classify's per-epoch schedule from lr0 to lr0 * lrf over `epochs`: linear, or half a cosine (--cos-lr,
    YOLOv5's one_cycle). torch's own schedulers; they match YOLOv5's lambdas to float rounding (≤ 1e-14 relative,
    from their step-by-step updates). Step it once after each epoch. All parameter groups start at lr0."""
    if cos_lr:
        eta_min = optimizer.param_groups[0]["lr"] * lrf
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min)
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=lrf, total_iters=epochs)
