"""Validate a YOLOv5 classifier (this project's checkpoint, an upstream YOLOv5 or ultralytics .pt) on a classification
dataset.

Usage:
    python classify/val.py --weights runs/train-cls/exp/weights/best.pt --data builtin10 --img 224
    python classify/val.py --weights yolov5s-cls.pt --data ../datasets/imagenet --img 224 --half --verbose

Reports top-1 / top-5 accuracy (per class with --verbose) on the dataset's val/ split (test/ when there
is no val/), and writes them to <project>/<name>/accuracy.csv.
"""

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from models.experimental import load_classifier  # noqa: E402
from models.yolo import input_norm  # noqa: E402
from utils.cli import (WORKERS_HELP, HelpFormatter, check_at_least, check_img_size, check_writable,  # noqa: E402
                       model_imgsz, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset, eval_split  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.log import LOGGER, colorstr, progress_bar  # noqa: E402
from utils.metrics import accuracy_table, top5_predictions  # noqa: E402
from utils.atomic import write_text_atomic  # noqa: E402
from utils.paths import increment_path  # noqa: E402
from utils.profiling import Timer  # noqa: E402

TQDM_BAR_FORMAT = "{l_bar}{bar:10}{r_bar}"  # YOLOv5's compact progress bar
VAL_COLUMNS = 36  # width of the loss/top1/top5 part of the training progress line


def class_names(model, nc):
    """Model class names as a list (upstream stores a dict), or the indices when it has none."""
    names = getattr(model, "names", None) or [str(i) for i in range(nc)]
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def check_classes(model, dataset, weights):
    """A model must predict at least the dataset's classes; warn when folder names and model names differ."""
    nc = int(getattr(model, "nc", 0) or len(class_names(model, 0)))
    if nc and len(dataset.classes) > nc:
        raise ValueError(f"{weights} predicts {nc} classes but {dataset.root} has {len(dataset.classes)} class "
                         f"folders: validate on the dataset the model was trained for")
    names = class_names(model, nc)
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


def run(
        data=DEFAULT_DATA,  # dataset name or ImageFolder root (uses val/, else test/)
        weights="yolov5s-cls.pt",  # checkpoint path (this project's, upstream YOLOv5's or ultralytics')
        batch_size=128,
        imgsz=None,  # None: the size the model was trained at (from its checkpoint), else 224
        device="",  # cuda device, i.e. 0 or 0,1,2,3 or cpu
        workers=8,  # max dataloader workers
        verbose=False,  # per-class table and speed
        project=ROOT / "runs/val-cls",
        name="exp",
        exist_ok=False,
        half=False,  # FP16 inference (CUDA only)
        dnn=False,  # accepted for YOLOv5 compatibility (OpenCV DNN is for ONNX files; .pt files ignore it)
        model=None,  # set by train.py: validate this model ...
        dataloader=None,  # ... on this loader,
        criterion=None,  # ... also reporting this loss,
        pbar=None,  # ... on the training progress bar
):
    """Top-1 and top-5 accuracy and the mean criterion loss: (top1, top5, loss)."""
    training = model is not None
    if training:
        half &= next(model.parameters()).device.type == "cuda"
        model.half() if half else model.float()
    else:
        check_at_least("--batch-size", batch_size, 1)
        check_at_least("--workers", workers, 0)
        imgsz = None if imgsz is None else check_img_size(imgsz)
        check_writable(Path(project) / name)
        device = select_device(device, batch_size=batch_size)
        if half and device.type != "cuda":
            LOGGER.warning(f"WARNING ⚠️ --half needs CUDA; validating in FP32 on {device.type.upper()}")
            half = False
        model = load_classifier(weights, device, "classify/val.py")
        imgsz = model_imgsz(imgsz, model)
        if hasattr(model, "check_size"):  # an ONNX file exported at one size: refuse another before any work
            model.check_size(imgsz)
        model.half() if half else model.float()
        test_dir = eval_split(check_cls_dataset(data))
        dataloader = create_classification_dataloader(test_dir, imgsz=imgsz, batch_size=batch_size, augment=False,
                                                      rank=-1, workers=workers, shuffle=False, norm=input_norm(model))
        check_classes(model, dataloader.dataset, weights)

    model.eval()
    action = "validating" if Path(dataloader.dataset.root).name == "val" else "testing"
    desc = f"{pbar.desc[:-VAL_COLUMNS]}{action:>{VAL_COLUMNS}}" if pbar else action
    top5, targets, loss, seconds = evaluate(model, dataloader, criterion, half, desc, leave=not training)
    acc = accuracy_table(top5, targets)
    top1_all, top5_all = acc.mean(0).tolist()
    if pbar:
        pbar.desc = f"{pbar.desc[:-VAL_COLUMNS]}{loss:>12.3g}{top1_all:>12.3g}{top5_all:>12.3g}"
    if training:
        return top1_all, top5_all, loss

    rows = [("all", targets.shape[0], top1_all, top5_all)]
    for i, c in enumerate(dataloader.dataset.classes):  # targets are folder indices: rows are named by folder
        acc_i = acc[targets == i]
        rows.append((c, acc_i.shape[0], *(acc_i.mean(0).tolist() if len(acc_i) else (0.0, 0.0))))
    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok, mkdir=True)
    write_accuracy(save_dir / "accuracy.csv", rows)
    if verbose:
        LOGGER.info(f"{'Class':>24}{'Images':>12}{'top1_acc':>12}{'top5_acc':>12}")
        for c, k, t1, t5 in rows:
            LOGGER.info(f"{c:>24}{k:>12}{t1:>12.3g}{t5:>12.3g}")
        per_image = tuple(s / max(targets.shape[0], 1) * 1e3 for s in seconds)
        LOGGER.info(f"Speed: %.1fms pre-process, %.1fms inference, %.1fms post-process per image at shape "
                    f"{(1, 3, imgsz, imgsz)}" % per_image)
    LOGGER.info(f"top1_acc {top1_all:.4g}, top5_acc {top5_all:.4g}; results saved to {colorstr('bold', save_dir)}")
    return top1_all, top5_all, loss


def parse_opt(known=False, argv=None):
    parser = argparse.ArgumentParser(description="Validate a YOLOv5 classifier",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--data", type=str, default=DEFAULT_DATA, help="dataset name or ImageFolder root")
    parser.add_argument("--weights", type=str, default="yolov5s-cls.pt", help="model.pt path or a YOLOv5 release name")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=None,
                        help="inference size (pixels); default: the model's training size, else 224")
    parser.add_argument("--device", default="", help="cuda device, i.e. 0 or 0,1,2,3 or cpu")
    parser.add_argument("--workers", type=int, default=8, help=WORKERS_HELP)
    parser.add_argument("--verbose", nargs="?", const=True, default=True, help="per-class accuracy table")
    parser.add_argument("--project", default=ROOT / "runs/val-cls", help="save to project/name")
    parser.add_argument("--name", default="exp", help="save to project/name")
    parser.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    parser.add_argument("--half", action="store_true", help="use FP16 half-precision inference (CUDA only)")
    parser.add_argument("--dnn", action="store_true", help="accepted for YOLOv5 compatibility; no effect on .pt files")
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def main(opt):
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
