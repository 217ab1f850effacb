"""Resolve `--data` to an ImageFolder root with train/ and val/ (or test/): a folder, a named dataset
(downloaded on first use) or the built-in offline dataset (generated on first use)."""

import os
import shutil
import urllib.error
import zipfile
from pathlib import Path


from data import builtin, digits, patches
from data.builtin import BUILTIN_NAME
from utils.downloads import download_file
from utils.log import LOGGER, colorstr
from utils.paths import DATASETS_DIR

DEFAULT_DATA = BUILTIN_NAME  # default --data of train/val: works offline on a fresh machine
DOWNLOAD_URL = "https://github.com/ultralytics/yolov5/releases/download/v1.0/{name}.zip"  # YOLOv5's assets
DOWNLOADABLE = ("imagenette160", "imagenette320", "imagewoof160", "imagewoof320",
                "cifar10", "cifar100", "mnist", "fashion-mnist", "imagenet10")
MANUAL = {"imagenet": "download ILSVRC2012 from https://image-net.org and arrange it as "
                      "imagenet/train/<class>/*.JPEG and imagenet/val/<class>/*.JPEG"}


def _datasets_dir(datasets_dir):
    # Read the module global at call time so tests (and callers) can redirect it.
    return Path(datasets_dir if datasets_dir is not None else DATASETS_DIR)


def is_cls_dataset(root):
    root = Path(root)
    return (root / "train").is_dir() and ((root / "val").is_dir() or (root / "test").is_dir())


def eval_split(root):
    """The evaluation split of a dataset root: val/ if present, else test/."""
    root = Path(root)
    return root / "val" if (root / "val").is_dir() else root / "test"


def class_names(root):
    """The class folder names of a dataset root's train/ split, in ImageFolder's (sorted) order."""
    return sorted(p.name for p in (Path(root) / "train").iterdir() if p.is_dir())


def _expect_splits(root):
    if not is_cls_dataset(root):
        raise FileNotFoundError(f"{root} is not a classification dataset: expected {root}/train/<class>/<image> "
                                f"and {root}/val/ (or test/)")
    return root


# Datasets generated offline on first use: name → (is-complete check, generator).
GENERATED = {BUILTIN_NAME: (builtin.is_current, builtin.make_builtin_dataset),
             digits.DIGITS_NAME: (digits.is_current, digits.make_digits_dataset),
             **{d.name: (d.is_current, d.make) for d in (patches.TEXTURES, patches.PHOTOS)}}


def ensure_generated(name, datasets_dir=None):
    """DATASETS_DIR/name for a generated dataset, (re)made on first use or when written by an older generator."""
    is_current, make = GENERATED[name]
    root = _datasets_dir(datasets_dir) / name
    if is_current(root):
        return root
    if root.exists():  # older generator version: replace it
        stale = root.with_name(f".{root.name}-stale-{os.getpid()}")
        os.rename(root, stale)
        shutil.rmtree(stale, ignore_errors=True)
    LOGGER.info(f"{colorstr('data: ')}generating dataset {root} ...")
    return make(root)


def _unzip_dataset(zip_path, name, datasets_dir):
    """Extract into a temporary folder, find the dataset root inside, and rename it to datasets_dir/name."""
    tmp = datasets_dir / f".{name}-unzip-{os.getpid()}"
    target = datasets_dir / name
    try:
        with zipfile.ZipFile(zip_path) as z:
            for member in z.namelist():  # refuse entries that would land outside the folder
                if not (tmp / member).resolve().is_relative_to(tmp.resolve()):
                    raise ValueError(f"unsafe path {member!r} in {zip_path}")
            z.extractall(tmp)
        candidates = [tmp / name, tmp] + [d for d in tmp.iterdir() if d.is_dir() and not d.name.startswith("__")]
        src = next((d for d in candidates if is_cls_dataset(d)), None)
        if src is None:
            raise FileNotFoundError(f"{zip_path} holds no train/ and val/ (or test/) folders")
        try:
            os.rename(src, target)
        except OSError:
            if not is_cls_dataset(target):  # not "another process won the race"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_cls_dataset(name, url=None, datasets_dir=None):
    """Download `url` (default: YOLOv5's release asset for `name`) and unzip it to DATASETS_DIR/name."""
    datasets_dir = _datasets_dir(datasets_dir)
    url = url or DOWNLOAD_URL.format(name=name)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    zip_path = datasets_dir / f"{name}.zip"
    LOGGER.info(f"{colorstr('data: ')}dataset {name} not found in {datasets_dir}, downloading {url} ...")
    try:
        download_file(url, zip_path)
    except (urllib.error.URLError, OSError, ValueError) as e:
        http = isinstance(e, urllib.error.HTTPError)
        reason = f"HTTP {e.code} {e.reason}" if http else getattr(e, "reason", None) or e
        raise ConnectionError(f"could not download dataset '{name}' from {url} ({reason}). Download it on a machine "
                              f"with internet access and unzip it into {datasets_dir} so that "
                              f"{datasets_dir / name}/train exists, or pass --data <folder>") from None
    try:
        root = _unzip_dataset(zip_path, name, datasets_dir)
    finally:
        zip_path.unlink(missing_ok=True)
    LOGGER.info(f"{colorstr('data: ')}dataset {name} saved to {root}")
    return root


def check_cls_dataset(data=DEFAULT_DATA, autodownload=True, url=None, datasets_dir=None):
    """Resolve `data` to a dataset root Path holding train/ and val/ (or test/).

    data: a folder; a folder name under DATASETS_DIR; a generated dataset (builtin10, digits, textures, photos: made
    offline); or a named dataset (downloaded from `url`, default YOLOv5's release asset, when autodownload). With
    `url`, any name can be downloaded.
    """
    data = str(data or DEFAULT_DATA).rstrip("/\\")
    datasets_dir = _datasets_dir(datasets_dir)
    path, named = Path(data).expanduser(), datasets_dir / data
    if path.is_dir():
        return _expect_splits(path)
    if data in GENERATED:
        return ensure_generated(data, datasets_dir)
    if named.is_dir():
        return _expect_splits(named)
    if data in MANUAL:
        raise FileNotFoundError(f"dataset '{data}' not found at {named}: {MANUAL[data]}")
    if data in DOWNLOADABLE or url:
        if not autodownload:
            source = url or DOWNLOAD_URL.format(name=data)
            raise FileNotFoundError(f"dataset '{data}' not found at {named} and autodownload is off: "
                                    f"download {source} and unzip it into {datasets_dir}")
        return download_cls_dataset(data, url, datasets_dir)
    raise FileNotFoundError(f"dataset '{data}' not found: pass a folder with train/ and val/ (or test/), or one of "
                            f"{', '.join(tuple(GENERATED) + DOWNLOADABLE + tuple(MANUAL))}")
