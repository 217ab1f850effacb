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

from models.experimental import load_classifier  # noqa: E402
from models.yolo import input_norm  # noqa: E402
from utils.cli import (HelpFormatter, check_at_least, check_img_size, check_writable,  # noqa: E402
                       model_imgsz, print_args, run_cli)
from utils.dataloaders import create_classification_dataloader  # noqa: E402
from utils.datasets import DEFAULT_DATA, check_cls_dataset, eval_split  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.evaluate import accuracy, check_classes, validate, write_accuracy  # noqa: E402
from utils.log import LOGGER, colorstr  # noqa: E402
from utils.options import (add_batch_size, add_data, add_device, add_dnn, add_half, add_imgsz,  # noqa: E402
                           add_run_folder, add_weights, add_workers)
from utils.paths import increment_path  # noqa: E402


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
    if model is not None:  # train.py's call: a model in memory
        return validate(model, dataloader, criterion, half, pbar)
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

    acc, targets, loss, seconds = accuracy(model, dataloader, criterion, half, pbar)
    top1_all, top5_all = acc.mean(0).tolist()
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
    add_data(parser)
    add_weights(parser, "model.pt (or .onnx) path or a YOLOv5 release name")
    add_batch_size(parser, "val")
    add_imgsz(parser, what="inference size (pixels)")
    add_device(parser)
    add_workers(parser)
    parser.add_argument("--verbose", nargs="?", const=True, default=True, help="per-class accuracy table")
    add_run_folder(parser, "runs/val-cls")
    add_half(parser)
    add_dnn(parser)
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def main(opt):
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
