"""Checkpoints: atomic saves, weights_only loads, upstream pickles accepted, malicious pickles refused."""

import pathlib

import numpy as np
import pytest
import torch

from models.experimental import attempt_load
from models.io.checkpoints import (CheckpointError, UnsafeCheckpointError, checkpoint_dict, load_checkpoint,
                               save_checkpoint)
from models.yolo import ClassificationModel, DetectionModel

from helpers import Payload, upstream_transforms


def _model(rate=0.0, nc=4):
    torch.manual_seed(1)
    m = ClassificationModel("yolov5n-cls.yaml", nc=nc, rate=rate)
    m.names = [f"class{i}" for i in range(nc)]
    return m.eval()


@pytest.mark.parametrize("rate", [0.0, "[0.]+[0.5]*8+[0.25]"])
def test_save_then_weights_only_load_gives_same_outputs(tmp_path, rate):
    model = _model(rate)
    path = save_checkpoint(checkpoint_dict(model, epoch=3), tmp_path / "best.pt")
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain containers and tensors only
    assert raw["yaml"]["rate"] == model.yaml["rate"] and raw["names"] == model.names and raw["epoch"] == 3
    loaded = attempt_load(path)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))  # architecture rebuilt from the file alone
    assert loaded.names == model.names and not loaded.training


def test_atomic_save_keeps_previous_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def _upstream_classifier_file(path):
    """A checkpoint laid out as upstream YOLOv5's classify/train.py writes it: a whole pickled half model."""
    model = _model()
    model.transforms = upstream_transforms(64)
    ckpt = {"epoch": -1, "best_fitness": 0.75, "model": model.half(), "ema": None, "updates": 10,
            "optimizer": None, "opt": {"save_dir": pathlib.PosixPath("runs/train-cls/exp"), "imgsz": 64},
            "git": None, "date": "2023-01-01T00:00:00"}
    torch.save(ckpt, path)
    return _model()


@pytest.mark.subprocess
@pytest.mark.slow
def test_own_checkpoint_loads_without_importing_torchvision(tmp_path):
    """torchvision's transforms join the allowlist only for files that name them (upstream's): importing torchvision
    costs seconds in every val/predict/export."""
    import subprocess
    import sys

    from helpers import ROOT, make_checkpoint

    path = make_checkpoint(tmp_path / "ours.pt")
    code = ("import sys; from models.io.checkpoints import load_checkpoint; "
            f"ckpt = load_checkpoint({str(path)!r}); print(sorted(ckpt)[:2], 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False"), out


def test_upstream_classifier_pickle_loads(tmp_path):
    reference = _upstream_classifier_file(tmp_path / "yolov5n-cls.pt")
    with pytest.raises(Exception):  # plain weights_only refuses it: it pickles whole modules
        torch.load(tmp_path / "yolov5n-cls.pt", weights_only=True)
    model = attempt_load(tmp_path / "yolov5n-cls.pt")
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x), reference.half().float()(x), atol=1e-5)
    assert model.names == reference.names


def test_upstream_detector_pickle_loads(tmp_path):
    det = DetectionModel("yolov5n.yaml").half()
    torch.save({"epoch": 5, "best_fitness": np.array([0.5]), "model": None, "ema": det, "updates": 1,
                "optimizer": None, "opt": {"weights": "yolov5n.pt"}, "date": None}, tmp_path / "det.pt")
    model = attempt_load(tmp_path / "det.pt", fuse=True)
    assert isinstance(model, DetectionModel) and next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("wrap", [lambda p: p, lambda p: {"model": p, "epoch": 1}])
def test_malicious_pickle_is_refused_without_running(tmp_path, wrap):
    marker = tmp_path / "pwned"
    torch.save(wrap(Payload(marker)), tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError) as e:
        attempt_load(tmp_path / "evil.pt")
    assert "system" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        attempt_load(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.parametrize("content,words", [(b"", "is empty"), (b"epoch 3, top1 0.7\nnot a checkpoint\n", "not a readable"),
                                           (b"PK\x03\x04 truncated zip", "not a readable")])
def test_files_that_are_not_checkpoints_are_one_line_errors(tmp_path, content, words):
    """An empty file, a text file renamed .pt, a truncated zip: torch.load fails with IndexError/KeyError/... there."""
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "x.pt")
    assert words in str(e.value) and "x.pt" in str(e.value) and "\n" not in str(e.value)


def test_release_weights_offline_give_clear_error(tmp_path, monkeypatch):
    import utils.downloads as downloads

    monkeypatch.setattr(downloads, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="download"):
        downloads.attempt_download("yolov5s-cls.pt", release_url="http://127.0.0.1:9")  # closed local port


def test_unknown_yolov5_class_is_named(tmp_path):
    import models.common as common

    class GhostConv(torch.nn.Module):  # a YOLOv5 block this project does not implement
        pass

    GhostConv.__module__, GhostConv.__qualname__ = "models.common", "GhostConv"
    common.GhostConv = GhostConv
    try:
        torch.save({"model": GhostConv()}, tmp_path / "old.pt")
    finally:
        del common.GhostConv
    with pytest.raises(UnsafeCheckpointError, match="needs YOLOv5's models.common.GhostConv"):
        load_checkpoint(tmp_path / "old.pt")


def test_release_weights_download_from_a_local_server(tmp_path, monkeypatch):
    """The real download path, offline: a local HTTP server stands in for YOLOv5's release page."""
    import utils.downloads as downloads
    from helpers import http_server

    release = tmp_path / "release"
    release.mkdir()
    model = _model()
    save_checkpoint(checkpoint_dict(model), release / "yolov5n-cls.pt")
    monkeypatch.setattr(downloads, "WEIGHTS_DIR", tmp_path / "weights")
    with http_server(release) as url:
        path = downloads.attempt_download("yolov5n-cls.pt", release_url=url)
    assert path == tmp_path / "weights" / "yolov5n-cls.pt"
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(attempt_load(path)(x), model(x))
    assert [p.name for p in (tmp_path / "weights").iterdir()] == ["yolov5n-cls.pt"]  # no partial files left
