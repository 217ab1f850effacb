"""Training wall time: this project's classify/train.py against upstream YOLOv5's own classify/train.py.

Both commands train the same architecture from scratch (yolov5n-cls: YOLOv5n's backbone cut at layer 10 and a
Classify head, 1,224,810 parameters) on the same data with the same settings (SGD, batch 64, --workers 2, 10
epochs, CPU by default), each run as its users run it, in alternated rounds. The whole command is timed: imports,
data, epochs, per-epoch validation and checkpoints, plots. Upstream augments with albumentations when it is
installed (without it, YOLOv5 trains without augmentation: not the same work, and this script says so); ours
applies the same augmentation in numpy/cv2, installed or not.

Upstream's code comes from --upstream PATH or $YOLOV5_UPSTREAM: a checkout of github.com/ultralytics/yolov5 whose
requirements are installed (plus albumentations). Its starting weights are made by its own DetectionModel; its
train.py cuts them into the classifier. Without a checkout the script says so and falls back to an in-process
imitation (our loop with an upstream-like loader: no image cache, workers restarted every epoch, NCHW tensors),
which is not upstream's code.

Usage:
    python benchmarks/train_throughput.py --upstream ../yolov5                 # digits, 32 px, 3 rounds: ~4 min
    YOLOV5_UPSTREAM=../yolov5 python benchmarks/train_throughput.py --rounds 5
    python benchmarks/train_throughput.py --device 0 --imgsz 224 --data imagenette160 --cfg yolov5s-cls.yaml
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from models.trainer import train_step, training_memory_format  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402
from utils.dataloaders import (PIN_MEMORY, ClassificationDataset, create_classification_dataloader,  # noqa: E402
                               seed_worker)
from utils.datasets import check_cls_dataset  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.optim import smart_optimizer  # noqa: E402
from utils.seeds import init_seeds  # noqa: E402

UPSTREAM_ENV = "YOLOV5_UPSTREAM"
MAKE_UPSTREAM_WEIGHTS = ("import sys, torch; from models.yolo import DetectionModel; "
                         "torch.save({'model': DetectionModel(sys.argv[1]).half()}, sys.argv[2])")


# ------------------------------------------------------------------------------ upstream's own code
def upstream_checkout(path):
    """The YOLOv5 checkout to compare with (--upstream, else $YOLOV5_UPSTREAM), or None."""
    path = path or os.getenv(UPSTREAM_ENV, "")
    if not path:
        return None
    path = Path(path).expanduser().resolve()
    if not (path / "classify" / "train.py").is_file() or not (path / "models" / "yolo.py").is_file():
        raise FileNotFoundError(f"--upstream {path} is not a YOLOv5 checkout (no classify/train.py, models/yolo.py)")
    return path


def upstream_env():
    """The environment for upstream's processes: without PYTHONPATH, so its `utils`/`models` are its own."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def upstream_start_weights(upstream, cfg, folder):
    """A checkpoint of upstream's own untrained detector for --cfg yolov5?-cls.yaml (its train.py cuts it at layer
    10 into the same classifier as our YAML), written by upstream's code."""
    name = Path(cfg).name
    if not (name.startswith("yolov5") and name.endswith("-cls.yaml")):
        raise ValueError(f"--cfg {cfg}: the upstream comparison needs a YOLOv5 classifier YAML (yolov5n-cls.yaml ...)")
    path = Path(folder) / name.replace("-cls.yaml", ".pt")
    subprocess.run([sys.executable, "-c", MAKE_UPSTREAM_WEIGHTS, f"models/{name.replace('-cls', '')}", str(path)],
                   cwd=upstream, env=upstream_env(), check=True, capture_output=True)
    return path


def has_albumentations():
    return subprocess.run([sys.executable, "-c", "import albumentations"], capture_output=True).returncode == 0


def timed_run(cmd, cwd, env):
    """Wall seconds of one command; its last output lines in the error when it fails."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(map(str, cmd[:2]))} failed (exit {proc.returncode}):\n{tail}")
    return seconds


def final_top1(save_dir):
    """Top-1 of the last epoch in a run's results.csv (both projects write YOLOv5's columns, padded or not)."""
    table = pd.read_csv(Path(save_dir) / "results.csv", skipinitialspace=True)
    table.columns = [c.strip() for c in table.columns]
    return float(table["metrics/accuracy_top1"].iloc[-1])


def compare_with_upstream(upstream, data, cfg, imgsz, batch_size, epochs, workers, device, rounds):
    """Alternated rounds of both commands; returns {name: [seconds, ...]} and prints the table."""
    data_dir = check_cls_dataset(data)
    albumentations = has_albumentations()
    if not albumentations:
        print("WARNING ⚠️ albumentations is not installed: upstream trains WITHOUT augmentation (less work than ours); "
              "pip install albumentations for a like-for-like comparison")
    with tempfile.TemporaryDirectory() as tmp:
        weights = upstream_start_weights(upstream, cfg, tmp)
        common = ["--data", data_dir, "--imgsz", imgsz, "--epochs", epochs, "--batch-size", batch_size,
                  "--workers", workers, "--optimizer", "SGD", "--pretrained", "False", "--device", device,
                  "--project", tmp, "--exist-ok"]
        runs = {"upstream": ([sys.executable, upstream / "classify" / "train.py", "--model", weights, "--name", "up",
                              *common], upstream, upstream_env()),
                "ours": ([sys.executable, ROOT / "classify" / "train.py", "--cfg", cfg, "--name", "ours", *common],
                         ROOT, None)}
        times, top1 = {k: [] for k in runs}, {k: [] for k in runs}
        for r in range(rounds):
            for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):  # alternate who goes first
                cmd, cwd, env = runs[name]
                times[name].append(timed_run([str(c) for c in cmd], cwd, env))
                top1[name].append(final_top1(Path(tmp) / ("up" if name == "upstream" else "ours")))
                print(f"round {r + 1}/{rounds}: {name:8s} {times[name][-1]:6.1f} s  (final top-1 {top1[name][-1]:.3f})")

    print(f"\ntraining wall time, {cfg} from scratch, {data_dir.name} at {imgsz} px, batch {batch_size}, --workers "
          f"{workers}, SGD, {epochs} epochs, {device}; upstream {upstream} "
          f"({'with' if albumentations else 'WITHOUT'} albumentations); {rounds} alternated rounds")
    print(f"{'':10s}{'min':>8s}{'median':>8s}{'max':>8s}")
    for name, t in times.items():
        print(f"{name:10s}{min(t):8.1f}{statistics.median(t):8.1f}{max(t):8.1f}")
    best, med = (min(times["ours"]) / min(times["upstream"]),
                 statistics.median(times["ours"]) / statistics.median(times["upstream"]))
    print(f"ours/upstream wall time: {best:.2f} (best of each), {med:.2f} (medians); "
          f"upstream/ours speed-up {1 / best:.2f}x")
    return times


# ------------------------------------------------------------------------ fallback: an imitation
def imitation_loader(path, imgsz, batch_size, workers, seed):
    """Upstream-like loading: no cache, workers that exit at the end of every epoch."""
    dataset = ClassificationDataset(root=path, augment=True, imgsz=imgsz, cache=False)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=False,
                      pin_memory=PIN_MEMORY and torch.cuda.is_available(), worker_init_fn=seed_worker,
                      generator=generator)


def images_per_second(loader, cfg, device, memory_format, epochs, seed):
    """Train a fresh model for `epochs` (the first untimed) and return images/s over the timed ones."""
    init_seeds(seed)
    model = ClassificationModel(cfg, nc=len(loader.dataset.classes)).to(device, memory_format=memory_format).train()
    optimizer = smart_optimizer(model, "SGD", 0.001)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    images, seconds = 0, 0.0
    for epoch in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0, n = time.perf_counter(), 0
        for x, y in loader:  # iterating starts the workers: a restart costs time inside the epoch, as in training
            x = x.to(device, non_blocking=True, memory_format=memory_format)
            train_step(model, x, y.to(device, non_blocking=True), criterion, optimizer, scaler)
            n += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if epoch:  # epoch 0 warms up allocators, kernels and the page cache
            images += n
            seconds += time.perf_counter() - t0
    return images / seconds


def compare_with_imitation(data, cfg, imgsz, batch_size, epochs, workers, device, seed=0):
    print(f"WARNING ⚠️ no upstream checkout (--upstream PATH or ${UPSTREAM_ENV}): falling back to an IMITATION of "
          f"upstream's loader written here, not upstream's code")
    device = select_device(device, batch_size=batch_size)
    train_dir = check_cls_dataset(data) / "train"
    epochs = max(epochs, 2)
    ours = create_classification_dataloader(train_dir, imgsz=imgsz, batch_size=batch_size, augment=True,
                                            cache="ram", workers=workers, seed=seed)
    fast = images_per_second(ours, cfg, device, training_memory_format(device), epochs, seed)
    del ours  # stop its persistent workers before the imitation runs
    slow = images_per_second(imitation_loader(train_dir, imgsz, batch_size, workers, seed), cfg, device,
                             torch.contiguous_format, epochs, seed)
    print(f"training images/s, {cfg} at {imgsz} px, batch {batch_size}, {device}: ours (RAM cache, persistent "
          f"workers, channels_last) {fast:.1f}, imitation {slow:.1f}, ratio {fast / slow:.2f}x")
    return fast, slow


def run(upstream="", data="digits", cfg="yolov5n-cls.yaml", imgsz=32, batch_size=64, epochs=10, workers=2,
        device="cpu", rounds=3):
    checkout = upstream_checkout(upstream)
    if checkout is None:
        return compare_with_imitation(data, cfg, imgsz, batch_size, epochs, workers, device)
    return compare_with_upstream(checkout, data, cfg, imgsz, batch_size, epochs, workers, device, rounds)


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="", help=f"YOLOv5 checkout to compare with (else ${UPSTREAM_ENV})")
    parser.add_argument("--data", default="digits", help="dataset name or ImageFolder root")
    parser.add_argument("--cfg", default="yolov5n-cls.yaml", help="YOLOv5 classifier YAML")
    parser.add_argument("--imgsz", "--img", type=int, default=32, help="image size (pixels)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="--workers given to both commands")
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs of each command")
    return parser.parse_args()


if __name__ == "__main__":
    run(**vars(parse_opt()))
