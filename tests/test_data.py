"""Data pipeline: transforms, ClassificationDataset, dataloader, built-in dataset, dataset resolution."""

import functools
import logging
import math
import os
import pickle
import socket
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

import utils.datasets as datasets
from data import patches
from data.builtin import CLASSES, make_builtin_dataset
from utils.augmentations import (IMAGENET_MEAN, IMAGENET_STD, CenterCrop, NormalizedTensor, RandomFlip,
                                 RandomResizedCrop, ToTensor,
                                 classify_train_transforms, classify_transforms)
from utils.dataloaders import ClassificationDataset, EpochSampler, create_classification_dataloader

from helpers import http_server


# ---------------------------------------------------------------------------------------------- helpers
def write_images(folder, n, size=(24, 32), seed=0, ext=".png"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        cv2.imwrite(str(folder / f"im{k}{ext}"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def make_imagefolder(root, classes=("cat", "dog", "fish"), n=4):
    for i, c in enumerate(classes):
        write_images(Path(root) / c, n, seed=i)
    return Path(root)


def make_split_dataset(root, classes=("a", "b"), n=2):
    for s, split in enumerate(("train", "val")):
        for i, c in enumerate(classes):
            write_images(Path(root) / split / c, n, seed=10 * s + i)
    return Path(root)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zip_folder(src, zip_path, prefix=""):
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in sorted(Path(src).rglob("*")):
            z.write(f, prefix + f.relative_to(src).as_posix())
    return zip_path


# ------------------------------------------------------------------------------------------- transforms
def test_center_crop_takes_centred_square_and_resizes():
    im = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)  # tall: crop rows 1..4
    out = CenterCrop(4)(im)
    assert (out.shape, out.dtype) == ((4, 4, 3), np.uint8)
    np.testing.assert_array_equal(out, im[1:5])  # same size → resize is the identity
    crop = CenterCrop((2, 3))
    assert (crop.h, crop.w) == (2, 3)
    assert crop(im).shape == (2, 3, 3)


def test_to_tensor_bgr_to_rgb_chw_scaled():
    im = np.zeros((2, 3, 3), np.uint8)
    im[..., 0], im[..., 2] = 255, 51  # blue full, red 0.2
    t = ToTensor()(im)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32 and t.is_contiguous()
    assert torch.allclose(t[0], torch.full((2, 3), 0.2)) and t[1].eq(0).all() and t[2].eq(1).all()
    assert ToTensor(half=True)(im).dtype == torch.float16 and ToTensor(half=True).half


def test_normalized_tensor_equals_yolov5s_to_tensor_and_normalize():
    import torchvision.transforms as T

    im = np.random.default_rng(3).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    for mean, std in ((IMAGENET_MEAN, IMAGENET_STD), ((0, 0, 0), (1, 1, 1))):
        out = NormalizedTensor(mean, std)(im)
        assert out.shape == (3, 7, 9) and out.dtype == torch.float32 and out.is_contiguous()
        torch.testing.assert_close(out, T.Normalize(mean, std)(ToTensor()(im)), rtol=0, atol=1e-6)


def test_classify_transforms_equals_hand_computation():
    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    out = classify_transforms(8)(im)
    crop = cv2.resize(im[:, 2:12], (8, 8), interpolation=cv2.INTER_LINEAR)
    rgb = crop[..., ::-1].astype(np.float32) / 255
    expected = ((rgb - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)).transpose(2, 0, 1)
    assert out.shape == (3, 8, 8) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", [classify_transforms, classify_train_transforms])
def test_transforms_reject_non_int_size(fn):
    with pytest.raises(TypeError, match="integer"):
        fn((224, 224))


def test_transforms_pickle_round_trip():
    im = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tf = classify_transforms(16)
    assert torch.equal(pickle.loads(pickle.dumps(tf))(im), tf(im))


def test_train_transforms_shape_dtype_and_seeded():
    im = np.random.default_rng(2).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    tf = classify_train_transforms(32)
    torch.manual_seed(0)
    a = tf(im)
    torch.manual_seed(0)
    b = tf(im)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, tf(im))  # random from call to call


def test_random_crop_and_flip_semantics():
    im = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    full = RandomResizedCrop(8, scale=(1.0, 1.0))(im)  # whole square image, only resized
    np.testing.assert_array_equal(full, cv2.resize(im, (8, 8), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_array_equal(RandomFlip(1.0, 1.0)(im), im[::-1, ::-1])
    np.testing.assert_array_equal(RandomFlip(0.0, 0.0)(im), im)
    for _ in range(20):  # extreme scales stay inside the image and give the requested size
        assert RandomResizedCrop(8, scale=(0.01, 1.0))(im[:5]).shape == (8, 8, 3)


# -------------------------------------------------------------------------------------------- dataset
def test_dataset_finds_classes_and_returns_tensor_label(tmp_path):
    root = make_imagefolder(tmp_path / "ds")
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    ds = ClassificationDataset(root, augment=False, imgsz=16)
    assert ds.classes == ["cat", "dog", "fish"] and ds.class_to_idx["fish"] == 2
    assert len(ds) == 12 and ds.targets == [t for _, t in ds.samples]
    x, y = ds[5]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 1
    x, _ = ClassificationDataset(root, augment=True, imgsz=16)[0]
    assert x.shape == (3, 16, 16)


def test_dataset_finds_the_images_torchvision_imagefolder_finds(tmp_path):
    from torchvision.datasets import ImageFolder

    root = make_imagefolder(tmp_path / "ds")
    write_images(root / "dog" / "nested" / "deeper", 2, seed=7)  # ImageFolder walks class folders recursively
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "fish" / "im0.png").rename(root / "fish" / "UPPER.PNG")  # extensions match in any case
    ours, theirs = ClassificationDataset(root, augment=False, imgsz=16), ImageFolder(str(root))
    assert (ours.classes, ours.class_to_idx) == (theirs.classes, theirs.class_to_idx)
    assert ours.samples == theirs.samples and ours.targets == theirs.targets and len(ours) == len(theirs) == 14


@pytest.mark.parametrize("cores, workers, processes, expected", [(2, 8, 1, 0), (16, 8, 1, 4), (16, 1, 1, 1),
                                                                 (16, 8, 2, 2), (1, 8, 1, 0)])
def test_cpu_training_shares_cores_between_loader_workers_and_torch_threads(monkeypatch, cores, workers, processes,
                                                                            expected):
    from utils.dataloaders import share_cpu_cores

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)  # torch's default: one thread per core
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    assert share_cpu_cores(workers, processes) == expected
    assert chosen[-1] + expected == max(1, cores // processes)  # every core used once


def test_unreadable_images_skipped_with_one_warning(tmp_path, logs):
    root = make_imagefolder(tmp_path / "ds")
    (root / "cat" / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    (root / "dog" / "empty.jpg").write_bytes(b"")
    ds = ClassificationDataset(root, augment=False, imgsz=16)
    assert len(ds) == 12 and not any("garbage" in p or "empty" in p for p, _ in ds.samples)
    warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 unreadable" in warnings[0] and "garbage.jpg" in warnings[0] and "empty.jpg" in warnings[0]
    for i in range(len(ds)):  # every remaining sample loads
        ds[i]


def test_missing_or_empty_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ClassificationDataset(tmp_path / "nope", augment=False, imgsz=16)
    (tmp_path / "flat").mkdir()
    write_images(tmp_path / "flat", 1)  # images but no class folders
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ClassificationDataset(tmp_path / "flat", augment=False, imgsz=16)
    for c in ("a", "b"):
        (tmp_path / "empty" / c).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no readable images in .*empty") as e:
        ClassificationDataset(tmp_path / "empty", augment=False, imgsz=16)
    assert "\n" not in str(e.value)


def test_empty_class_folder_error_names_it(tmp_path, logs):
    root = make_imagefolder(tmp_path / "ds", classes=("a", "b"))
    (root / "c").mkdir()
    (root / "d").mkdir()
    (root / "d" / "broken.png").write_bytes(b"\x89PNG garbage")  # only unreadable files: empty too
    with pytest.raises(FileNotFoundError) as e:
        ClassificationDataset(root, augment=False, imgsz=16)
    msg = str(e.value)
    assert "\n" not in msg and str(root / "c") in msg and str(root / "d") in msg and str(root / "a") not in msg


@pytest.mark.parametrize("cache", ["ram", True, "disk"])
def test_cache_gives_same_tensors(tmp_path, cache):
    root = make_imagefolder(tmp_path / "ds", n=3)
    plain = ClassificationDataset(root, augment=False, imgsz=16)
    cached = ClassificationDataset(root, augment=False, imgsz=16, cache=cache)
    assert len(plain) == len(cached)
    for i in range(len(plain)):
        assert torch.equal(plain[i][0], cached[i][0]) and plain[i][1] == cached[i][1]
    npys = sorted(root.rglob("*.npy"))
    assert len(npys) == (9 if cache == "disk" else 0)
    if cache == "disk":  # second run reuses the files, and they are never mistaken for images
        again = ClassificationDataset(root, augment=False, imgsz=16, cache="disk")
        assert len(again) == 9 and torch.equal(again[4][0], plain[4][0])


def test_bad_cache_value(tmp_path):
    with pytest.raises(ValueError, match="cache"):
        ClassificationDataset(make_imagefolder(tmp_path / "ds"), augment=False, imgsz=16, cache="gpu")


# ----------------------------------------------------------------------------------------- dataloader
def test_dataloader_batches_and_reproducible_order(tmp_path):
    root = make_imagefolder(tmp_path / "ds")
    loader = create_classification_dataloader(root, imgsz=16, batch_size=5, augment=False, workers=0)
    assert isinstance(loader.sampler, EpochSampler) and loader.sampler.order.num_replicas == 1
    shapes = [(x.shape, y.shape) for x, y in loader]
    assert shapes == [((5, 3, 16, 16), (5,))] * 2 + [((2, 3, 16, 16), (2,))]
    labels = [torch.cat([y for _, y in create_classification_dataloader(root, imgsz=16, batch_size=5, augment=False,
                                                                         workers=0, seed=s)]) for s in (0, 0, 1)]
    assert torch.equal(labels[0], labels[1]) and not torch.equal(labels[0], labels[2])
    big = create_classification_dataloader(root, imgsz=16, batch_size=64, augment=False, workers=0, shuffle=False)
    assert big.batch_size == 12 and next(iter(big))[1].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_dataloader_workers_reproducible_augmentation(tmp_path):
    root = make_imagefolder(tmp_path / "ds", n=2)
    batches = []
    for workers in (2, 2, 0):  # the same batches with or without worker processes
        loader = create_classification_dataloader(root, imgsz=16, batch_size=3, augment=True, workers=workers)
        assert loader.num_workers == workers and loader.persistent_workers == (workers > 0)
        batches.append(next(iter(loader)))
    for b in batches[1:]:
        assert torch.equal(batches[0][0], b[0]) and torch.equal(batches[0][1], b[1])
    loader.sampler.set_epoch(1)  # another epoch: another order and other augmentations
    assert not torch.equal(next(iter(loader))[0], batches[0][0])


def test_dataloader_distributed_sampler_with_process_group(tmp_path):
    root = make_imagefolder(tmp_path / "ds")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        loader = create_classification_dataloader(root, imgsz=16, batch_size=4, augment=False, rank=0, workers=0)
        assert isinstance(loader.sampler.order, DistributedSampler) and loader.sampler.order.num_replicas == 1
        loader.sampler.set_epoch(1)
        assert sum(len(y) for _, y in loader) == 12
    finally:
        dist.destroy_process_group()


def test_dataloader_distributed_sampler_splits_by_env(tmp_path, monkeypatch):
    root = make_imagefolder(tmp_path / "ds", n=3)  # 9 images over 2 ranks → 5 each (padded)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    loader = create_classification_dataloader(root, imgsz=16, batch_size=4, augment=False, rank=1, workers=0)
    sampler = loader.sampler.order
    assert isinstance(sampler, DistributedSampler) and (sampler.num_replicas, sampler.rank) == (2, 1)
    assert len(sampler) == math.ceil(9 / 2) and sum(len(y) for _, y in loader) == 5


# ---------------------------------------------------------------------------------- built-in dataset
def test_builtin_dataset_deterministic_and_learnable_shape(tmp_path):
    a = make_builtin_dataset(tmp_path / "a", n_train=3, n_val=2, size=32)
    b = make_builtin_dataset(tmp_path / "b", n_train=3, n_val=2, size=32)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert len(CLASSES) >= 10 and len(list((a / "val").iterdir())) == len(CLASSES)
    ds = ClassificationDataset(a / "train", augment=False, imgsz=32)
    assert len(ds.classes) == len(CLASSES) and len(ds) == 3 * len(CLASSES)
    c = make_builtin_dataset(tmp_path / "c", n_train=3, n_val=2, size=32, seed=1)
    assert (c / files[-1]).read_bytes() != (a / files[-1]).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    with pytest.raises(FileExistsError):
        make_builtin_dataset(a)


def test_builtin_generated_on_first_use_and_refreshed_when_stale(datasets_dir, monkeypatch):
    tiny = functools.partial(make_builtin_dataset, n_train=2, n_val=1, size=16)
    monkeypatch.setitem(datasets.GENERATED, "builtin10", (datasets.GENERATED["builtin10"][0], tiny))
    root = datasets.check_cls_dataset(datasets.DEFAULT_DATA)
    assert root == datasets_dir / "builtin10" and datasets.is_cls_dataset(root)
    assert datasets.check_cls_dataset(None) == root  # None → default
    (root / ".builtin_version").write_text("0\n")  # written by an older generator
    (root / "stale.txt").write_text("x")
    assert datasets.check_cls_dataset("builtin10") == root and not (root / "stale.txt").exists()


@pytest.mark.slow
def test_digits_dataset_is_real_stratified_and_generated_offline(datasets_dir):
    root = datasets.check_cls_dataset("digits")
    assert root == datasets_dir / "digits"
    train = ClassificationDataset(root / "train", augment=False, imgsz=32)
    val = ClassificationDataset(root / "val", augment=False, imgsz=32)
    assert (len(train), len(val)) == (1438, 359) and train.classes == [str(c) for c in range(10)]
    counts = np.bincount([y for _, y in val.samples], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: about 36 of each digit
    first = sorted((root / "val" / "0").iterdir())[0]
    im = cv2.imread(str(first))
    assert im.shape == (32, 32, 3) and im.max() > 200 and im.min() < 30  # ink on paper, not noise
    assert datasets.check_cls_dataset("digits") == root  # second call reuses it


@pytest.mark.slow
@pytest.mark.parametrize("spec", [patches.TEXTURES, patches.PHOTOS], ids=lambda d: d.name)
def test_patch_datasets_are_real_deterministic_and_generated_offline(tmp_path, datasets_dir, spec):
    root = datasets.check_cls_dataset(spec.name)
    assert root == datasets_dir / spec.name and datasets.check_cls_dataset(spec.name) == root  # second call reuses it
    classes = sorted(c for c, _, _ in spec.classes)
    for split, n in (("train", 200), ("val", 60)):
        ds = ClassificationDataset(root / split, augment=False, imgsz=32)
        assert ds.classes == classes and len(classes) == 10
        assert np.bincount([y for _, y in ds.samples], minlength=10).tolist() == [n] * 10
    im = cv2.imread(str(root / "val" / classes[0] / "000.png"), cv2.IMREAD_UNCHANGED)
    assert im.shape == (32, 32, 3) and im.dtype == np.uint8 and im.std() > 1  # a photograph, not a flat fill
    gray = [(lambda a: (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())(cv2.imread(str(f)))
            for f in sorted((root / "train").glob("*/01*.png"))]
    assert all(gray) if spec.name == "textures" else not any(gray)
    again = spec.make(tmp_path / "again")  # the same bytes when made again elsewhere
    files = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.png")) and len(files) == 2600
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files[::50])


@pytest.mark.parametrize("width", [10, 171, 256, 451, 1411])
def test_patch_train_and_val_regions_share_no_pixel(width):
    (t0, t1), (v0, v1) = patches.region(width, "train"), patches.region(width, "val")
    assert t0 == 0 < t1 == v0 < v1 == width and t1 == int(width * patches.TRAIN_WIDTH)
    im = np.repeat(np.broadcast_to(np.arange(256, dtype=np.uint8), (200, 256))[..., None], 3, axis=2)  # value = column
    cut = patches.region(256, "train")[1]
    rng = np.random.default_rng(0)
    assert max(p.max() for p in patches.cut_patches(im, "train", 100, 32, rng)) < cut
    assert min(p.min() for p in patches.cut_patches(im, "val", 100, 32, rng)) >= cut


@pytest.mark.parametrize("name", ["textures", "photos"])
def test_patch_datasets_without_scikit_image_one_clear_line(monkeypatch, datasets_dir, name):
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage...` raises ImportError
    with pytest.raises(ImportError) as e:
        datasets.check_cls_dataset(name)
    assert str(e.value) == f"dataset '{name}' needs scikit-image: pip install scikit-image"
    assert not (datasets_dir / name).exists()


# ---------------------------------------------------------------------------------- dataset resolution
def test_check_cls_dataset_folder_and_eval_split(tmp_path, datasets_dir):
    root = make_split_dataset(tmp_path / "mine")
    assert datasets.check_cls_dataset(root) == root and datasets.check_cls_dataset(f"{root}/") == root
    assert datasets.eval_split(root) == root / "val"
    (root / "val").rename(root / "test")
    assert datasets.check_cls_dataset(str(root)) == root and datasets.eval_split(root) == root / "test"
    make_split_dataset(datasets_dir / "other")  # a name under DATASETS_DIR
    assert datasets.check_cls_dataset("other") == datasets_dir / "other"
    (tmp_path / "nosplits" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="train"):
        datasets.check_cls_dataset(tmp_path / "nosplits")


def test_check_cls_dataset_unknown_name(datasets_dir):
    with pytest.raises(FileNotFoundError) as e:
        datasets.check_cls_dataset("no-such-dataset")
    msg = str(e.value)
    assert "\n" not in msg and "no-such-dataset" in msg and "imagenette160" in msg and "builtin10" in msg
    with pytest.raises(FileNotFoundError, match="image-net.org"):
        datasets.check_cls_dataset("imagenet")


@pytest.mark.parametrize("prefix", ["somename/", ""])  # zip with the folder inside, or splits at the top
def test_named_dataset_downloaded_and_unzipped(tmp_path, datasets_dir, prefix, logs):
    served = tmp_path / "served"
    served.mkdir()
    zip_folder(make_split_dataset(tmp_path / "src"), served / "somename.zip", prefix)
    with http_server(served) as base:
        root = datasets.check_cls_dataset("somename", url=f"{base}/somename.zip")
    assert root == datasets_dir / "somename" and datasets.is_cls_dataset(root)
    assert len(ClassificationDataset(root / "train", augment=False, imgsz=16)) == 4
    assert sorted(p.name for p in datasets_dir.iterdir()) == ["somename"]  # zip and temp folders removed
    assert datasets.check_cls_dataset("somename") == root  # found locally from now on


def test_default_url_used_for_known_names(tmp_path, datasets_dir, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    zip_folder(make_split_dataset(tmp_path / "src"), served / "imagenette160.zip", "imagenette160/")
    with http_server(served) as base:
        monkeypatch.setattr(datasets, "DOWNLOAD_URL", base + "/{name}.zip")
        with pytest.raises(FileNotFoundError, match="autodownload"):
            datasets.check_cls_dataset("imagenette160", autodownload=False)
        assert datasets.check_cls_dataset("imagenette160") == datasets_dir / "imagenette160"


def test_download_failure_is_one_clear_line(tmp_path, datasets_dir):
    url = f"http://127.0.0.1:{free_port()}/cifar10.zip"  # nothing listens there
    with pytest.raises(ConnectionError) as e:
        datasets.check_cls_dataset("cifar10", url=url)
    msg = str(e.value)
    assert "\n" not in msg and url in msg and str(datasets_dir) in msg
    with http_server(tmp_path) as base, pytest.raises(ConnectionError, match="HTTP 404"):
        datasets.check_cls_dataset("cifar10", url=f"{base}/missing.zip")
    assert not datasets_dir.exists() or not list(datasets_dir.iterdir())


def test_zip_with_escaping_paths_refused(tmp_path, datasets_dir):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "evil.zip", "w") as z:
        z.writestr("../evil.txt", "x")
    with http_server(served) as base, pytest.raises(ValueError, match="unsafe"):
        datasets.check_cls_dataset("evil", url=f"{base}/evil.zip")
    assert not (tmp_path / "evil.txt").exists()
