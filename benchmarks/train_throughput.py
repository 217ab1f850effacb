"""Training throughput (images/s) of classify/train.py's loop: our data/memory settings vs an upstream-like baseline.

(a) ours:     images decoded once into RAM (--cache ram), persistent DataLoader workers, channels_last tensors
(b) baseline: images read and decoded from disk every epoch (YOLOv5's default, no --cache), DataLoader workers
              started anew every epoch (a plain torch DataLoader), contiguous NCHW tensors

Both use the same model, data, augmentation, batch size, optimizer, seeds and training step (train.train_step),
measured one after the other in one process. The first epoch of each is a warm-up and is not timed; the time to
build the RAM cache is reported separately (paid once per run).

Usage:
    python benchmarks/train_throughput.py                      # built-in data, yolov5n-cls at 64 px, CPU: ~1 min
    python benchmarks/train_throughput.py --device 0 --imgsz 224 --cfg yolov5s-cls.yaml --batch-size 128
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from classify.train import train_step, training_memory_format  # noqa: E402
from utils.seeds import init_seeds  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402
from utils.dataloaders import (PIN_MEMORY, ClassificationDataset, create_classification_dataloader,  # noqa: E402
                               seed_worker)
from utils.datasets import DEFAULT_DATA, check_cls_dataset  # noqa: E402
from utils.device import select_device  # noqa: E402
from utils.optim import smart_optimizer  # noqa: E402


def baseline_loader(path, imgsz, batch_size, workers, seed):
    """Upstream-like: no cache, workers that exit at the end of every epoch."""
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
    optimizer = smart_optimizer(model, "Adam", 0.001)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    images, seconds = 0, 0.0
    for epoch in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        n = 0
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


def run(data=DEFAULT_DATA, cfg="yolov5n-cls.yaml", imgsz=64, batch_size=64, epochs=3, workers=2, device="cpu", seed=0):
    device = select_device(device, batch_size=batch_size)
    train_dir = check_cls_dataset(data) / "train"

    t = time.perf_counter()
    ours = create_classification_dataloader(train_dir, imgsz=imgsz, batch_size=batch_size, augment=True, cache="ram",
                                            workers=workers, seed=seed)
    cache_s = time.perf_counter() - t
    fast = images_per_second(ours, cfg, device, training_memory_format(device), epochs, seed)
    nw = ours.num_workers  # the baseline gets the same number of workers
    del ours  # stop its persistent workers before the baseline runs

    base = baseline_loader(train_dir, imgsz, batch_size, nw, seed)
    slow = images_per_second(base, cfg, device, torch.contiguous_format, epochs, seed)

    print(f"\ntraining throughput, {cfg} at {imgsz} px, batch {batch_size}, {base.num_workers} workers, {device}, "
          f"{len(base.dataset)} images x {epochs - 1} timed epochs")
    print(f"  (a) ours (RAM cache, persistent workers, {str(training_memory_format(device)).split('.')[-1]}): "
          f"{fast:8.1f} images/s   (+ {cache_s:.1f} s once to build the cache)")
    print(f"  (b) upstream-like (disk reads, per-epoch workers, contiguous):        {slow:8.1f} images/s")
    print(f"  ratio (a)/(b): {fast / slow:.2f}x")
    return fast, slow


def parse_opt():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="dataset name or ImageFolder root")
    parser.add_argument("--cfg", default="yolov5n-cls.yaml", help="model YAML")
    parser.add_argument("--imgsz", "--img", type=int, default=64, help="image size (pixels)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per setting; the first is not timed")
    parser.add_argument("--workers", type=int, default=2, help="max dataloader workers")
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    run(**vars(parse_opt()))
