"""classify/rank.py: scores files from classifier and detector sources, reusable by load_model."""

import subprocess
import sys

import pytest
import torch

from classify import rank
from data.builtin import make_builtin_dataset
from models.io.checkpoints import checkpoint_dict, save_checkpoint
from models.io.ranks import load_scores
from models.prune import channel_groups, load_model
from models.yolo import ClassificationModel, DetectionModel

from helpers import ROOT


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_builtin_dataset(tmp_path_factory.mktemp("data") / "tiny", n_train=6, n_val=2, size=32)


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = ClassificationModel("yolov5n-cls.yaml", nc=10)
    return save_checkpoint(checkpoint_dict(model), tmp_path_factory.mktemp("w") / "cls.pt")


def test_hrank_scores_file_is_plain_and_reusable(tmp_path, tiny_data, classifier_ckpt):
    out = rank.run(weights=classifier_ckpt, data=tiny_data, criterion="hrank", batches=2, batch_size=4, imgsz=32,
                   workers=0, output=tmp_path / "s.pt")
    raw = torch.load(out, weights_only=True)
    scores, meta = load_scores(out)
    assert raw["scores"].keys() == scores.keys()
    assert meta["criterion"] == "hrank" and meta["batches"] == 2 and meta["imgsz"] == 32
    assert str(tiny_data) in meta["data"] and str(classifier_ckpt) == meta["source"]
    model = ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5)
    assert {g.name for g in channel_groups(model)} == set(scores)
    load_model(model, classifier_ckpt, scores)
    again = rank.run(weights=classifier_ckpt, data=tiny_data, criterion="hrank", batches=2, batch_size=4,
                     imgsz=32, workers=0, output=tmp_path / "s2.pt")
    assert all(torch.equal(scores[k], load_scores(again)[0][k]) for k in scores)  # deterministic


def test_detector_source_with_cfg(tmp_path):
    torch.manual_seed(0)
    det = DetectionModel("yolov5n.yaml")
    path = tmp_path / "det.pt"
    torch.save({"model": det.half(), "ema": None, "epoch": -1}, path)  # upstream-style pickled detector
    out = rank.run(weights=path, cfg="yolov5n-cls.yaml", criterion="l1", output=tmp_path / "d.pt")
    scores, meta = load_scores(out)
    l1 = det.model[0].conv.weight.float().abs().sum((1, 2, 3)).double()
    assert torch.allclose(scores["model.0"], l1) and meta["cfg"] == "yolov5n-cls.yaml"


@pytest.mark.subprocess
@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path):
    res = subprocess.run([sys.executable, "classify/rank.py", "--weights", str(tmp_path / "missing.pt"),
                          "--criterion", "l1"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("rank.py: error:") and "missing.pt" in res.stderr


def test_taylor_and_added_streams_from_the_cli_record_their_settings(tmp_path, tiny_data, classifier_ckpt, logs):
    out = rank.run(weights=classifier_ckpt, data=tiny_data, criterion="taylor", batches=1, batch_size=4, imgsz=32,
                   workers=0, residual="added", output=tmp_path / "t.pt")
    scores, meta = load_scores(out)
    assert meta["criterion"] == "taylor" and meta["residual"] == "added" and meta["batches"] == 1
    model = ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5)
    assert {g.name for g in channel_groups(model)} == set(scores) and all((s >= 0).all() for s in scores.values())
    load_model(model, classifier_ckpt, scores)
    text = "\n".join(r.getMessage() for r in logs.records)
    assert "lowest" in text and "tied = share of channels" in text  # the table says what its columns are
    l1 = load_scores(rank.run(weights=classifier_ckpt, criterion="l1", output=tmp_path / "l1.pt"))[1]
    assert l1["imgsz"] is None and l1["residual"] is None  # data-free: no data settings recorded
