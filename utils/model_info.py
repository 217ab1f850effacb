"""Model summaries: parameters, GFLOPs (torch's flop counter) and a per-layer table of rates and widths."""

import torch

from utils.log import LOGGER


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_flops(model, imgsz, ch=3):
    """FLOPs of one forward pass of a batch of one imgsz x imgsz image, counted by torch.utils.flop_counter: 2 per
    multiply-accumulate of convolutions, linear layers and matrix products (BatchNorm, activations and additions are
    not counted). The one count every report uses: plans for --target-flops, model summaries, prune.py's table."""
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, ch, imgsz, imgsz, device=p.device, dtype=p.dtype))
    return counter.get_total_flops()


def model_gflops(model, imgsz=224, ch=3):
    """GFLOPs of one forward pass at imgsz x imgsz (see count_flops)."""
    training = model.training
    try:
        return count_flops(model.eval(), imgsz, ch) / 1e9
    finally:
        model.train(training)


def layer_rows(model):
    """(index, module, rate, kept, original) per layer of model.model; widths are output channels."""
    rows = []
    for m in model.model:
        kept, full = getattr(m, "width", (None, None))
        rows.append((m.i, m.type.split(".")[-1], getattr(m, "rate", 0.0), kept, full))
    return rows


def model_info(model, imgsz=224, verbose=False, name="model"):
    """Log and return {'layers', 'parameters', 'gradients', 'gflops'}; verbose adds the per-layer table."""
    n_p = count_params(model)
    n_g = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_l = len(list(model.modules()))
    try:
        gflops = model_gflops(model, imgsz)
    except Exception:  # a model the counter cannot run (a detector's placeholder head): the summary still stands
        gflops = float("nan")
    if verbose:
        LOGGER.info(f"{'layer':>5} {'module':<10} {'rate':>5} {'channels kept/orig':>19}")
        for i, mod, rate, kept, full in layer_rows(model):
            widths = f"{kept}/{full}" if full else "-"
            LOGGER.info(f"{i:>5} {mod:<10} {rate:>5.2f} {widths:>19}")
    LOGGER.info(f"{name} summary: {n_l} layers, {n_p:,} parameters, {n_g:,} gradients, {gflops:.2f} GFLOPs at {imgsz}")
    return {"layers": n_l, "parameters": n_p, "gradients": n_g, "gflops": gflops}
