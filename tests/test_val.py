"""classify/val.py: accuracy against a hand computation, both checkpoint formats, training-mode call, errors."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from classify import val
from data.builtin import make_builtin_dataset
from models.io.checkpoints import checkpoint_dict, save_checkpoint
from models.yolo import ClassificationModel
from utils.augmentations import classify_transforms
from utils.dataloaders import ClassificationDataset, create_classification_dataloader

from helpers import ROOT

COMMON = dict(batch_size=16, imgsz=32, device="cpu", workers=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_builtin_dataset(tmp_path_factory.mktemp("data") / "tiny", n_train=2, n_val=6, size=32)


@pytest.fixture(scope="module")
def model(data):
    """A random yolov5n classifier whose BN statistics are calibrated on the images, so its predictions vary
    from image to image; weights rounded to fp16 so both checkpoint formats hold the same numbers."""
    torch.manual_seed(0)
    m = ClassificationModel("yolov5n-cls.yaml", nc=10)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = None  # cumulative average over the calibration pass
            bn.reset_running_stats()
    loader = create_classification_dataloader(data / "val", imgsz=32, batch_size=60, augment=False, workers=0)
    with torch.no_grad():
        m.train()(next(iter(loader))[0])
    return m.half().float().eval()


@pytest.fixture(scope="module")
def project_ckpt(model, tmp_path_factory):
    return save_checkpoint(checkpoint_dict(model), tmp_path_factory.mktemp("w") / "project.pt")


@pytest.fixture(scope="module")
def upstream_ckpt(model, tmp_path_factory):
    """Upstream YOLOv5's layout: the whole model pickled in half precision, names as a dict."""
    import copy

    m = copy.deepcopy(model).half()
    m.names = {i: f"class{i}" for i in range(10)}
    path = tmp_path_factory.mktemp("w") / "upstream.pt"
    torch.save({"model": m, "ema": None, "epoch": -1, "optimizer": None, "date": "2022-11-22"}, path)
    return path


def hand_accuracy(model, data):
    """top1/top5 computed image by image, independent of val.py."""
    ds = ClassificationDataset(data / "val", augment=False, imgsz=32, transform=classify_transforms(32))
    top1 = top5 = 0
    with torch.no_grad():
        for i in range(len(ds)):
            x, y = ds[i]
            order = model(x[None]).argsort(1, descending=True)[0].tolist()
            top1 += order[0] == y
            top5 += y in order[:5]
    return top1 / len(ds), top5 / len(ds)


def test_val_matches_hand_computation(model, data, project_ckpt, tmp_path):
    top1, top5, loss = val.run(data=str(data), weights=project_ckpt, project=tmp_path, name="v", **COMMON)
    exp1, exp5 = hand_accuracy(model, data)
    assert top1 == pytest.approx(exp1, abs=1e-6) and top5 == pytest.approx(exp5, abs=1e-6)
    assert 0 < exp1 < exp5 < 1  # predictions vary, so the comparison means something
    assert loss == 0.0  # no criterion outside training
    lines = (tmp_path / "v" / "accuracy.csv").read_text().splitlines()
    assert lines[0] == "class,images,top1_acc,top5_acc" and lines[1].startswith("all,60,") and len(lines) == 12


def test_upstream_checkpoint_gives_same_accuracy(data, project_ckpt, upstream_ckpt, tmp_path):
    ours = val.run(data=str(data), weights=project_ckpt, project=tmp_path, **COMMON)
    theirs = val.run(data=str(data), weights=upstream_ckpt, project=tmp_path, **COMMON)
    assert ours[:2] == pytest.approx(theirs[:2], abs=1e-6)
    assert (tmp_path / "exp").is_dir() and (tmp_path / "exp2").is_dir()  # increment_path run folders


def test_training_mode_call_reports_loss(model, data):
    loader = create_classification_dataloader(data / "val", imgsz=32, batch_size=16, augment=False, workers=0,
                                              shuffle=False)
    criterion = nn.CrossEntropyLoss()
    top1, top5, loss = val.run(model=model, dataloader=loader, criterion=criterion)
    exp1, exp5 = hand_accuracy(model, data)
    assert (top1, top5) == pytest.approx((exp1, exp5), abs=1e-6)
    with torch.no_grad():
        expected = sum(criterion(model(x), y).item() for x, y in loader) / len(loader)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_half_on_cpu_falls_back_to_fp32(data, project_ckpt, tmp_path):
    fp32 = val.run(data=str(data), weights=project_ckpt, project=tmp_path, **COMMON)
    half = val.run(data=str(data), weights=project_ckpt, project=tmp_path, half=True, **COMMON)
    assert half[:2] == fp32[:2]


@pytest.mark.subprocess
@pytest.mark.slow
def test_fewer_model_classes_than_folders_is_one_line_error(data, tmp_path):
    small = save_checkpoint(checkpoint_dict(ClassificationModel("yolov5n-cls.yaml", nc=3)), tmp_path / "nc3.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1", YOLOV5_DATASETS_DIR=str(tmp_path / "datasets"))
    args = [sys.executable, str(ROOT / "classify" / "val.py"), "--weights", str(small), "--data", str(data),
            "--img", "32", "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "runs")]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "predicts 3 classes" in out.stderr and "10 class folders" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_per_class_rows_are_named_by_folder_when_model_names_differ(data, upstream_ckpt, tmp_path, logs):
    val.run(data=str(data), weights=upstream_ckpt, project=tmp_path, name="v", **COMMON)  # names class0..class9
    folders = sorted(p.name for p in (data / "val").iterdir())
    assert "class0" not in folders
    rows = (tmp_path / "v" / "accuracy.csv").read_text().splitlines()[2:]
    assert [r.split(",")[0] for r in rows] == folders
    assert any("class names" in r.getMessage() and "differ" in r.getMessage() for r in logs.records)
