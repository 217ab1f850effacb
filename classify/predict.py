"""Classify images, videos, folders, globs, URLs and webcams with a (pruned or unpruned) YOLOv5 classifier.

Usage:
    python classify/predict.py --weights yolov5s-cls.pt --source img.jpg     # image
                                                            path/            # folder
                                                            'path/*.jpg'     # glob
                                                            vid.mp4          # video
                                                            list.txt         # list of paths
                                                            https://x/y.jpg  # URL
                                                            0                # webcam
                                                            'rtsp://host/s'  # stream

Prints the top-5 classes per image and saves annotated copies (and with --save-txt, `labels/<stem>.txt`
holding `prob name` lines, highest first) to runs/predict-cls/exp{,2,3,...}.
"""

import argparse
import sys
from collections import namedtuple
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import cv2  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from models.experimental import load_classifier  # noqa: E402
from models.yolo import input_norm  # noqa: E402
from utils.augmentations import classify_transforms  # noqa: E402
from utils.cli import HelpFormatter, check_img_size, check_writable, model_imgsz, print_args, run_cli  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.log import LOGGER, colorstr  # noqa: E402
from utils.options import (add_data, add_device, add_dnn, add_half, add_imgsz, add_run_folder,  # noqa: E402
                           add_weights)
from utils.paths import increment_path  # noqa: E402
from utils.profiling import Timer  # noqa: E402
from utils.sources import load_source  # noqa: E402

# One classified image or video frame, as run() returns it. top5: class indices, most likely first;
# probs and logits: every class, on the CPU, float32.
Prediction = namedtuple("Prediction", "path frame top5 probs logits")


def default_source():
    """An image shipped inside the installed ultralytics package, so the default command works offline."""
    from ultralytics.utils import ASSETS

    return str(ASSETS / "bus.jpg")


def square_size(imgsz):
    """One side length from --imgsz (an int, or YOLOv5's 1- or 2-element list): classifiers are square."""
    sizes = [imgsz] if isinstance(imgsz, int) else list(imgsz)
    if len(sizes) > 1 and len(set(sizes)) > 1:
        LOGGER.warning(f"WARNING ⚠️ --imgsz {sizes}: classification inputs are square, using {sizes[0]}")
    return check_img_size(int(sizes[0]))


def annotate(im0, lines, names):
    """im0 with the top-5 lines written at its top-left, as upstream YOLOv5 draws them."""
    from ultralytics.utils.plotting import Annotator

    annotator = Annotator(im0, example=str(names))  # cv2 drawing unless names need a unicode font
    if annotator.pil:
        annotator.text([32, 32], "\n".join(lines), txt_color=(255, 255, 255), box_color=(0, 0, 0))
    else:
        step = cv2.getTextSize("0", 0, annotator.sf, annotator.tf)[0][1] + 2 * annotator.lw + 2
        for k, line in enumerate(lines):  # cv2 cannot draw "\n": one call per line, baseline by baseline
            annotator.text((32, 32 + step * (k + 1)), line, txt_color=(255, 255, 255), box_color=(0, 0, 0))
    return annotator.result()


class VideoSaver:
    """Writes annotated frames to `<save_dir>/<name>.mp4`, one writer per source.

    Video files come one after another, so starting a new one closes the others; live streams interleave
    and keep theirs open.
    """

    def __init__(self):
        self.writers = {}

    def write(self, save_path, im0, fps, interleaved=False):
        save_path = str(Path(save_path).with_suffix(".mp4"))
        if save_path not in self.writers:
            if not interleaved:
                self.release()
            h, w = im0.shape[:2]
            self.writers[save_path] = cv2.VideoWriter(save_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        self.writers[save_path].write(im0)

    def release(self):
        for writer in self.writers.values():
            writer.release()
        self.writers = {}


def video_fps(dataset, vid_cap, path):
    """Frame rate for a saved video: the source's, divided by --vid-stride so the video keeps its duration."""
    if vid_cap is not None:
        fps = vid_cap.get(cv2.CAP_PROP_FPS)
    else:  # live stream: the rate its reader measured at opening
        fps = dataset.fps[dataset.sources.index(path)] if path in getattr(dataset, "sources", []) else 30
    return fps / dataset.vid_stride if fps and fps == fps else 30  # NaN/0 → 30


def show(window, im0, state):
    """cv2.imshow unless this OpenCV has no GUI (headless build, no display): then warn once and stop trying."""
    if not state.get("ok", True):
        return
    try:
        cv2.imshow(window, im0)
        cv2.waitKey(1)
    except cv2.error:
        LOGGER.warning("WARNING ⚠️ --view-img: cannot display images here (headless OpenCV or no display)")
        state["ok"] = False


def checked_weights(weights):
    """The one weights file run() classifies with (the first of a list): a .pt checkpoint or an .onnx file."""
    weights = str(weights[0] if isinstance(weights, (list, tuple)) else weights)
    if Path(weights).suffix.lower() in {".torchscript", ".engine", ".tflite"}:
        raise ValueError(f"--weights {weights}: predict.py runs PyTorch .pt checkpoints and .onnx files "
                         f"(export.py makes the other formats)")
    return weights


def log_ignored(**flags):
    """One line naming the YOLOv5 options given that do nothing for classification."""
    unused = [f"--{k}" for k, v in flags.items() if v]
    if unused:
        LOGGER.info(f"{', '.join(unused)}: no effect for PyTorch classification, ignored")


def prepared_model(weights, device, imgsz, half):
    """(model, imgsz, names): the classifier on device (FP16 with half), the size to run it at (requested, else its
    training size) and a name for every class."""
    model = load_classifier(weights, device, "classify/predict.py")
    imgsz = model_imgsz(imgsz, model)
    if hasattr(model, "check_size"):  # an ONNX file exported at one size: refuse another before any work
        model.check_size(imgsz)
    model = model.half() if half else model
    nc = getattr(model, "nc", len(model.names))
    names = list(model.names)[:nc] + [str(j) for j in range(len(model.names), nc)]
    return model, imgsz, names


class Outputs:
    """Where each prediction goes: labels/<stem>.txt (save_txt), an annotated image or video (save_img), a window
    (view_img)."""

    def __init__(self, save_dir, names, save_txt=False, save_img=True, view_img=False):
        self.save_dir, self.names = save_dir, names
        self.save_txt, self.save_img, self.view_img = save_txt, save_img, view_img
        self.saver, self.display = VideoSaver(), {}

    def write(self, dataset, path, frame, im0, vid_cap, lines):
        p = Path(path)
        if self.save_txt:
            txt_name = f"{p.stem}.txt" if dataset.mode == "image" else f"{p.stem}_{frame}.txt"
            (self.save_dir / "labels" / txt_name).write_text("\n".join(lines) + "\n")
        if self.save_img or self.view_img:
            annotated = annotate(im0, lines, self.names)
            if self.view_img:
                show(str(p), annotated, self.display)
            if self.save_img and dataset.mode == "image":
                cv2.imwrite(str(self.save_dir / p.name), annotated)
            elif self.save_img:
                fps = video_fps(dataset, vid_cap, path)
                self.saver.write(self.save_dir / p.name, annotated, fps, interleaved=dataset.mode == "stream")

    def close(self):
        self.saver.release()


def classify_frames(model, dataset, names, device, half, outputs):
    """(a Prediction per image/frame of dataset, the pre-process/inference/post-process timers); each one is logged
    and written to outputs."""
    results = []
    dt = (Timer(device), Timer(device), Timer(device))
    for path, im, im0, vid_cap, s in dataset:
        with dt[0]:
            im = im.to(device)
            im = (im.half() if half else im.float())[None]
        with dt[1]:
            logits = model(im)
        with dt[2]:
            prob = F.softmax(logits.float(), dim=1)[0]
        top5 = prob.argsort(0, descending=True)[:5].tolist()
        frame = dataset.frame if dataset.mode != "image" else 0
        results.append(Prediction(path, frame, top5, prob.cpu(), logits[0].float().cpu()))

        s += f"{im.shape[2]}x{im.shape[3]} {', '.join(f'{names[j]} {prob[j]:.2f}' for j in top5)}, "
        outputs.write(dataset, path, frame, im0, vid_cap, [f"{prob[j]:.2f} {names[j]}" for j in top5])
        LOGGER.info(f"{s}{dt[1].last * 1e3:.1f}ms")
    return results, dt


def log_summary(results, dt, imgsz, save_dir, save_txt, save_img):
    """Mean times per image and where the results went."""
    t = tuple(x.total / len(results) * 1e3 for x in dt)
    LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms postprocess per image "
                f"at shape {(1, 3, imgsz, imgsz)}")
    if save_txt or save_img:
        n = len(list(save_dir.glob("labels/*.txt")))
        labels = f"\n{n} labels saved to {save_dir / 'labels'}" if save_txt else ""
        LOGGER.info(f"Results saved to {colorstr('bold', save_dir)}{labels}")


@torch.inference_mode()
def run(
    weights="yolov5s-cls.pt",  # model path (this project's checkpoint, an upstream YOLOv5 or ultralytics -cls.pt)
    source=None,  # file/dir/glob/URL/.txt list/0 for webcam; None: ultralytics' bus.jpg
    data=None,  # accepted for YOLOv5 compatibility; class names come from the checkpoint
    imgsz=None,  # inference size (pixels); None: the model's training size (from its checkpoint), else 224
    device="",  # cuda device, i.e. 0 or 0,1,2,3 or cpu
    view_img=False,  # show results
    save_txt=False,  # save top-5 results to labels/*.txt
    nosave=False,  # do not save images/videos
    augment=False,  # accepted for YOLOv5 compatibility (no effect on classification)
    visualize=False,  # accepted for YOLOv5 compatibility (no effect)
    update=False,  # accepted for YOLOv5 compatibility (no effect)
    project=ROOT / "runs/predict-cls",  # save results to project/name
    name="exp",  # save results to project/name
    exist_ok=False,  # existing project/name ok, do not increment
    half=False,  # use FP16 half-precision inference (CUDA only)
    dnn=False,  # accepted for YOLOv5 compatibility (OpenCV DNN is for ONNX files)
    vid_stride=1,  # video frame-rate stride
):
    """Classify every image/frame of `source`; returns a list of Prediction (path, frame, top5, probs, logits)."""
    source = str(source if source is not None else default_source())
    imgsz = None if imgsz is None else square_size(imgsz)
    weights = checked_weights(weights)
    log_ignored(augment=augment, visualize=visualize, update=update, dnn=dnn)
    save_img = not nosave
    check_writable(Path(project) / name)

    device = select_device(device)
    if half and device.type != "cuda":
        LOGGER.info("--half is CUDA only: running in FP32 on the CPU")
    half = half and device.type == "cuda"
    model, imgsz, names = prepared_model(weights, device, imgsz, half)
    dataset = load_source(source, img_size=imgsz, transforms=classify_transforms(imgsz, input_norm(model)), vid_stride=vid_stride)

    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
    (save_dir / "labels" if save_txt else save_dir).mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":  # warm up so the first image's time is not CUDA start-up
        model(torch.zeros(1, 3, imgsz, imgsz, device=device, dtype=torch.half if half else torch.float))

    outputs = Outputs(save_dir, names, save_txt, save_img, view_img)
    try:
        results, dt = classify_frames(model, dataset, names, device, half, outputs)
    finally:
        outputs.close()
        if hasattr(dataset, "close"):
            dataset.close()

    if not results:
        LOGGER.warning(f"WARNING ⚠️ no readable images or video frames in {source}")
        return results
    log_summary(results, dt, imgsz, save_dir, save_txt, save_img)
    return results


def parse_opt(argv=None):
    parser = argparse.ArgumentParser(description="Classify images and videos with a YOLOv5 classifier",
                                     formatter_class=HelpFormatter)
    add_weights(parser, "model path(s): .pt or .onnx; the first is used", several=True)
    parser.add_argument("--source", type=str, default=None,
                        help="file/dir/glob/URL/list.txt, 0 for webcam (default: ultralytics' bus.jpg)")
    add_data(parser, "accepted for YOLOv5 compatibility, no effect (class names come from the model)", default=None)
    add_imgsz(parser, what="inference size (pixels)", hw=True)
    add_device(parser)
    parser.add_argument("--view-img", action="store_true", help="show results")
    parser.add_argument("--save-txt", action="store_true", help="save results to *.txt")
    parser.add_argument("--nosave", action="store_true", help="do not save images/videos")
    parser.add_argument("--augment", action="store_true", help="augmented inference (no effect, compatibility)")
    parser.add_argument("--visualize", action="store_true", help="visualize features (no effect, compatibility)")
    parser.add_argument("--update", action="store_true", help="update all models (no effect, compatibility)")
    add_run_folder(parser, "runs/predict-cls")
    add_half(parser)
    add_dnn(parser)
    parser.add_argument("--vid-stride", type=int, default=1, help="video frame-rate stride")
    opt = parser.parse_args(argv)
    if opt.imgsz:
        opt.imgsz *= 2 if len(opt.imgsz) == 1 else 1  # expand, as YOLOv5
    print_args(vars(opt))
    return opt


def main(opt):
    return run(**vars(opt))


if __name__ == "__main__":
    run_cli(main, parse_opt())
