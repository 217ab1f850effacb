"""Evaluation of a classifier on a loader: predictions, top-1/top-5 accuracy, loss, timings, and accuracy.csv.

classify/val.py validates a checkpoint with it; models/trainer.py validates the model being trained every epoch.
"""

from pathlib import Path

import pandas as pd
import torch

from utils.atomic import write_text_atomic
from utils.log import LOGGER, progress_bar
from utils.metrics import accuracy_table, top5_predictions
from utils.profiling import Timer

TQDM_BAR_FORMAT = "{l_bar}{bar:10}{r_bar}"  # YOLOv5's compact progress bar
VAL_COLUMNS = 36  # width of the loss/top1/top5 part of the training progress line


def model_class_names(model, nc):
    """Model class names as a list (upstream stores a dict), or the indices when it has none."""
    names = getattr(model, "names", None) or [str(i) for i in range(nc)]
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def check_classes(model, dataset, weights):
    """A model must predict at least the dataset's classes; warn when folder names and model names differ."""
    nc = int(getattr(model, "nc", 0) or len(model_class_names(model, 0)))
    if nc and len(dataset.classes) > nc:
        raise ValueError(f"{weights} predicts {nc} classes but {dataset.root} has {len(dataset.classes)} class "
                         f"folders: validate on the dataset the model was trained for")
    names = model_class_names(model, nc)
    if names[:len(dataset.classes)] != dataset.classes and not all(str(n).isdigit() for n in names):
        LOGGER.warning(f"WARNING ⚠️ class names of {weights} differ from the folders of {dataset.root}; "
                       f"accuracy assumes folder i is class i")


def write_accuracy(path, rows):
    """accuracy.csv: class, images, top1_acc, top5_acc (first row: all classes)."""
    table = pd.DataFrame(rows, columns=["class", "images", "top1_acc", "top5_acc"])
    write_text_atomic(path, table.to_csv(index=False, float_format="%.5g"))  # quotes class names with commas


@torch.inference_mode()
def evaluate(model, dataloader, criterion=None, half=False, desc="validating", leave=True):
    """Top-5 predictions, targets, mean loss and (pre-process, inference, post-process) seconds over a loader."""
    device = model.device if hasattr(model, "device") else next(model.parameters()).device  # an ONNX file: CPU
    top5, targets, loss = [], [], 0.0
    dt = (Timer(device), Timer(device), Timer(device))  # pre-process, inference, post-process
    bar = progress_bar(dataloader, desc, len(dataloader), leave, bar_format=TQDM_BAR_FORMAT, position=0)
    with torch.amp.autocast(device_type=device.type, enabled=device.type == "cuda"):
        for images, labels in bar:
            with dt[0]:
                images, labels = images.to(device, non_blocking=True), labels.to(device)
                images = images.half() if half else images
            with dt[1]:
                y = model(images)
            with dt[2]:
                top5.append(top5_predictions(y))
                targets.append(labels)
                if criterion:
                    loss += criterion(y, labels).item()
    return torch.cat(top5), torch.cat(targets), loss / max(len(dataloader), 1), [t.total for t in dt]


def accuracy(model, dataloader, criterion=None, half=False, pbar=None, leave=True):
    """(per-image top-1/top-5 hits, targets, mean loss, seconds) of `model` in eval mode over `dataloader`. With a
    training progress bar `pbar`, the validation shows on its line and its loss/top1/top5 columns end it."""
    model.eval()
    action = "validating" if Path(dataloader.dataset.root).name == "val" else "testing"
    desc = f"{pbar.desc[:-VAL_COLUMNS]}{action:>{VAL_COLUMNS}}" if pbar else action
    top5, targets, loss, seconds = evaluate(model, dataloader, criterion, half, desc, leave)
    acc = accuracy_table(top5, targets)
    if pbar:
        top1_all, top5_all = acc.mean(0).tolist()
        pbar.desc = f"{pbar.desc[:-VAL_COLUMNS]}{loss:>12.3g}{top1_all:>12.3g}{top5_all:>12.3g}"
    return acc, targets, loss, seconds


def validate(model, dataloader, criterion=None, half=False, pbar=None):
    """(top1, top5, mean loss) of a model in memory (being trained, or pruned) on `dataloader`; FP16 on CUDA only."""
    half &= next(model.parameters()).device.type == "cuda"
    model.half() if half else model.float()
    acc, _, loss, _ = accuracy(model, dataloader, criterion, half, pbar, leave=False)
    top1_all, top5_all = acc.mean(0).tolist()
    return top1_all, top5_all, loss
