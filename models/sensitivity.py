"""Sensitivity of a trained classifier to pruning: accuracy after pruning one channel group at a time, no fine-tune.

The table (columns group, rate, width, full, top1, base_top1) is what classify/sensitivity.py writes as a csv and
what allocation (models/allocation.py SensitivityDrop) reads back to predict a group's accuracy loss at a width.
"""

from itertools import islice
from pathlib import Path

import torch

from models.criteria import recalibrate_bn
from models.prune import channel_groups, select_channels
from models.rates import kept_width
from models.yolo import input_norm
from utils.dataloaders import create_classification_dataloader
from utils.datasets import eval_split
from utils.log import progress_bar

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


def preload(path, imgsz, batch_size, count, workers, seed, device, norm=None):
    """The first `count` images (in a seeded shuffled order, so every class shows) as a list of tensor batches."""
    loader = create_classification_dataloader(path, imgsz=imgsz, batch_size=batch_size, augment=False,
                                              workers=workers, shuffle=True, seed=seed, norm=norm)
    batches = list(islice(loader, -(-count // loader.batch_size)))
    x, y = torch.cat([b[0] for b in batches])[:count], torch.cat([b[1] for b in batches])[:count]
    return [(xs.to(device).float(), ys.to(device)) for xs, ys in zip(x.split(batch_size), y.split(batch_size))]


def group_sensitivity(model, data_root, scores, imgsz=224, batch_size=64, images=512, calib_batches=5,
                      rates=SENSITIVITY_RATES, workers=8, seed=0, split="val"):
    """The sensitivity table of `model` on `images` images of `split` (val or train), with BN recalibrated on
    `calib_batches` training batches; see sensitivity()."""
    device = next(model.parameters()).device
    root = Path(data_root)
    eval_dir = eval_split(root) if split == "val" else root / "train"
    norm = input_norm(model)
    evaluate = preload(eval_dir, imgsz, batch_size, images, workers, seed, device, norm)
    calibrate = preload(root / "train", imgsz, batch_size, calib_batches * batch_size, workers, seed + 1, device, norm)
    return sensitivity(model, scores, evaluate, calibrate, rates)


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
