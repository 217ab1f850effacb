"""Classification dataset (ImageFolder read with cv2, verified, optionally cached) and its DataLoader."""

import os
import random
import sys
from multiprocessing.pool import ThreadPool
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from utils.augmentations import IMAGENET_NORM, classify_train_transforms, classify_transforms
from utils.distributed import is_distributed, torch_distributed_zero_first
from utils.hyp import augmentation_args, load_hyp
from utils.log import LOGGER, colorstr

NUM_THREADS = min(8, max(1, os.cpu_count() or 1))  # for I/O-bound verification and caching
PIN_MEMORY = str(os.getenv("PIN_MEMORY", True)).lower() == "true"  # YOLOv5's switch
MAX_LISTED = 10  # unreadable files named in the warning before "... and N more"
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision ImageFolder's


def _pil_open(path):
    """PIL's own Image.open: importing ultralytics patches it to pip-install a HEIF plugin whenever a file is
    unidentified, which would reach for the network on every corrupt image."""
    patches = sys.modules.get("ultralytics.utils.patches")
    return (getattr(patches, "_image_open", None) or Image.open)(path)


def _is_readable(path):
    """Cheap integrity check: the file opens and its header/structure verifies, without a full decode."""
    try:
        with _pil_open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types for broken files; any of them means "skip"
        return False


def _npy_path(path):
    # Keep the image's extension in the name so a.jpg and a.png in one folder do not share a cache file.
    return Path(f"{path}.npy")


def _write_npy(path):
    """Decode an image and save it beside itself as .npy (atomic, so concurrent ranks never see half a file)."""
    npy = _npy_path(path)
    if npy.exists() and npy.stat().st_mtime >= Path(path).stat().st_mtime:
        return True
    im = cv2.imread(str(path))
    if im is None:
        return False
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, im)
    os.replace(tmp, npy)
    return True


class ClassificationDataset(Dataset):
    """ImageFolder (`root/<class>/<image>`) read with cv2 and transformed to (tensor, label).

    Finds the same classes and images as torchvision's ImageFolder, with its attributes (classes, class_to_idx,
    samples, targets, imgs), without importing torchvision (see utils.augmentations.Compose).

    Unreadable images are skipped with one warning. cache: False, 'ram' (or True: decode once up front in
    this process, so forked DataLoader workers share the arrays) or 'disk' (decode once to `<image>.npy`).
    transform: optional override of the default train/eval transform for `augment`. hyp: the augmentation
    settings of utils.hyp (None: the defaults of data/hyps/hyp.cls.yaml). norm: (mean, std) of the model's inputs
    (models.yolo.input_norm; None: ImageNet's, as YOLOv5's).
    """

    def __init__(self, root, augment, imgsz, cache=False, transform=None, hyp=None, norm=None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {root}")
        self.root = str(root)
        self.classes, self.class_to_idx = self.find_classes(root)
        self.samples = self._image_files(root)  # empty classes get a clear error in _check_classes
        self.targets = [t for _, t in self.samples]
        self.imgs = self.samples
        self.cache = "ram" if cache is True else (cache or None)
        if self.cache not in {None, "ram", "disk"}:
            raise ValueError(f"cache must be False, True, 'ram' or 'disk', not {cache!r}")
        if transform is None:
            mean, std = norm or IMAGENET_NORM
            transform = (classify_train_transforms(imgsz, **augmentation_args(load_hyp(hyp)), mean=mean, std=std)
                         if augment else classify_transforms(imgsz, (mean, std)))
        self.transform = transform

        paths = [p for p, _ in self.samples]
        self.ims = None
        with ThreadPool(NUM_THREADS) as pool:
            ok = pool.map(_is_readable, paths)
            if self.cache == "disk":
                ok = self._cache_disk(pool, paths, ok)
            elif self.cache == "ram":
                self.ims = pool.map(lambda i: cv2.imread(paths[i]) if ok[i] else None, range(len(paths)))
                ok = [im is not None for im in self.ims]  # a file that verifies but fails to decode is unreadable
        self._drop_unreadable(root, ok)
        self._check_classes(root)
        if self.ims is not None:
            self.ims = [im for im in self.ims if im is not None]
            gb = sum(im.nbytes for im in self.ims) / 1e9
            LOGGER.info(f"{colorstr('dataset: ')}cached {len(self.ims)} images ({gb:.2f} GB RAM) from {root}")

    def find_classes(self, directory):
        """Sorted class folders, ignoring hidden ones (.ipynb_checkpoints, .cache, ...)."""
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
        if not classes:
            raise FileNotFoundError(f"no class folders in {directory}: expected {directory}/<class>/<image>")
        return classes, {c: i for i, c in enumerate(classes)}

    def _image_files(self, root):
        """[(path, class index)] of the files with an image extension under each class folder (recursively,
        following links, sorted: ImageFolder's order)."""
        samples = []
        for c in self.classes:
            for folder, _, files in sorted(os.walk(Path(root) / c, followlinks=True)):
                samples += [(os.path.join(folder, f), self.class_to_idx[c]) for f in sorted(files)
                            if f.lower().endswith(IMG_EXTENSIONS)]
        return samples

    def __len__(self):
        return len(self.samples)

    def _cache_disk(self, pool, paths, ok):
        """Write missing .npy files; returns ok with files that failed to decode marked unreadable."""
        try:
            return pool.map(lambda i: ok[i] and _write_npy(paths[i]), range(len(paths)))
        except OSError as e:  # read-only dataset folder, full disk: train uncached rather than fail
            LOGGER.warning(f"{colorstr('dataset: ')}WARNING ⚠️ cannot write .npy cache ({e}); reading images")
            self.cache = None
            return ok

    def _drop_unreadable(self, root, ok):
        bad = [p for (p, _), good in zip(self.samples, ok) if not good]
        if not bad:
            return
        more = len(bad) - MAX_LISTED
        shown = ", ".join(bad[:MAX_LISTED]) + (f" ... and {more} more" if more > 0 else "")
        LOGGER.warning(f"{colorstr('dataset: ')}WARNING ⚠️ skipped {len(bad)} unreadable image(s) in {root}: "
                       f"{shown}")
        self.samples = [s for s, good in zip(self.samples, ok) if good]
        self.imgs = self.samples
        self.targets = [t for _, t in self.samples]

    def _check_classes(self, root):
        if not self.samples:
            raise FileNotFoundError(f"no readable images in {root} (looked for {', '.join(IMG_EXTENSIONS)} "
                                    f"in {root}/<class>/)")
        present = set(self.targets)
        empty = [str(root / c) for i, c in enumerate(self.classes) if i not in present]
        if empty:
            raise FileNotFoundError(f"no readable images in class folder(s): {', '.join(empty[:MAX_LISTED])}")

    def load(self, i):
        """Decoded BGR image i, from RAM, .npy or the image file."""
        if self.ims is not None:
            return self.ims[i]
        path = self.samples[i][0]
        if self.cache == "disk":
            return np.load(_npy_path(path))
        im = cv2.imread(path)
        if im is None:
            raise FileNotFoundError(f"cannot read image {path}")
        return im

    seed = 0  # base of the per-sample augmentation seeds (set by create_classification_dataloader)

    def __getitem__(self, key):
        """key: an index, or (index, epoch) from EpochSampler: then the augmentation draws from a seed of
        (seed, epoch, index) alone, the same in any worker, with any number of workers, after any resume."""
        if isinstance(key, tuple):
            i, epoch = key
            with torch.random.fork_rng(devices=[]):  # leave the process's own random stream untouched
                # CPU generator only: transforms draw from it, and torch.manual_seed would cost ~20x more
                torch.default_generator.manual_seed(hash((self.seed, epoch, i)) & 0xFFFF_FFFF)
                return self.transform(self.load(i)), self.samples[i][1]
        return self.transform(self.load(key)), self.samples[key][1]


class EpochSampler(Sampler):
    """Yields (index, epoch) pairs in an order that depends only on (seed, epoch) and the rank's share.

    Wraps torch's DistributedSampler (one replica without DDP); call set_epoch(epoch) before each epoch.
    """

    def __init__(self, dataset, shuffle, seed, num_replicas=None, rank=None):
        self.order = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self):
        return ((i, self.epoch) for i in self.order)

    def __len__(self):
        return len(self.order)


def seed_worker(worker_id):
    """Seed numpy and random in each DataLoader worker from torch's per-worker seed (reproducible runs)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(0)  # cv2's own thread pool fights the worker processes for cores


def _epoch_sampler(dataset, shuffle, seed, rank):
    # The seed must be the same on every rank so the ranks split one shared permutation.
    if rank == -1:
        return EpochSampler(dataset, shuffle, seed, num_replicas=1, rank=0)
    if is_distributed():
        return EpochSampler(dataset, shuffle, seed)
    world, rank = int(os.getenv("WORLD_SIZE", 1)), int(os.getenv("RANK", rank))
    return EpochSampler(dataset, shuffle, seed, num_replicas=world, rank=rank)


def share_cpu_cores(workers, processes=1):
    """Loader workers for training on the CPU, with torch's thread count lowered so that workers and compute
    threads together use each core once. Returns the number of workers.

    On a shared core, a worker process preempts one of torch's threads and the others wait for it at the end of
    every op: on 2 cores, yolov5n-cls on digits trained slower with 1 or 2 workers than with none. A quarter of
    the cores (at most `workers`) load data, the rest compute; on fewer than 4 cores the images are loaded
    between steps in the training process. `processes`: training processes on this machine (CPU DDP).
    """
    cores = max(1, (os.cpu_count() or 1) // processes)
    nw = min(workers, cores // 4)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - nw)))  # never more than torch/OMP chose
    return nw


def create_classification_dataloader(path, imgsz=224, batch_size=16, augment=True, cache=False, rank=-1,
                                     workers=8, shuffle=True, seed=0, hyp=None, norm=None):
    """DataLoader over ClassificationDataset(path); rank != -1 (DDP, pass LOCAL_RANK) splits it across ranks.

    Call `loader.sampler.set_epoch(epoch)` each epoch: the order and the augmentation of every image are then
    functions of (seed, epoch) alone, so a resumed run sees exactly the batches an uninterrupted one would.
    hyp: augmentation settings (utils.hyp) when augment is True; norm: (mean, std) the model expects (input_norm).
    """
    with torch_distributed_zero_first(rank):  # local rank 0 writes any .npy cache first
        dataset = ClassificationDataset(root=path, augment=augment, imgsz=imgsz, cache=cache, hyp=hyp, norm=norm)
    batch_size = min(batch_size, len(dataset))
    nd = torch.cuda.device_count()
    nw = min((os.cpu_count() or 1) // max(nd, 1), batch_size if batch_size > 1 else 0, workers)
    dataset.seed = seed
    return DataLoader(dataset,
                      batch_size=batch_size,
                      sampler=_epoch_sampler(dataset, shuffle, seed, rank),
                      num_workers=nw,
                      persistent_workers=nw > 0,
                      pin_memory=PIN_MEMORY and torch.cuda.is_available(),
                      worker_init_fn=seed_worker)
