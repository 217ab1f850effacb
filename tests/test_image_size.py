"""A model runs at the size it was trained at unless told otherwise: val, predict, export, rank and sensitivity read
it from the checkpoint (YOLOv5's and this project's 'opt', ultralytics' 'train_args'); a different --imgsz warns."""

import cv2
import onnx
import pytest
import torch

import export
from classify import predict, rank, sensitivity, val
from data.builtin import make_builtin_dataset
from models.experimental import attempt_load, trained_imgsz
from models.io.ranks import load_scores
from models.yolo import input_norm
from utils.augmentations import classify_transforms
from utils.cli import DEFAULT_IMGSZ, model_imgsz

from helpers import make_checkpoint


@pytest.fixture(scope="module")
def trained_at_64(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgsz")
    return {"weights": make_checkpoint(d / "m64.pt", nc=10, imgsz=64), "plain": make_checkpoint(d / "plain.pt", nc=10),
            "data": make_builtin_dataset(d / "tiny", n_train=4, n_val=2, size=32)}


def test_trained_size_is_read_from_every_checkpoint_kind():
    assert trained_imgsz({"opt": {"imgsz": 64}}) == 64  # this project's and upstream YOLOv5's classifiers
    assert trained_imgsz({"train_args": {"imgsz": 224, "task": "classify"}}) == 224  # ultralytics'
    assert trained_imgsz({"train_args": {"imgsz": [96, 96]}}) == 96
    for unknown in ({}, {"opt": {}}, {"opt": {"imgsz": 0}}, {"opt": {"imgsz": True}}, {"opt": None}, None):
        assert trained_imgsz(unknown) is None


def test_model_imgsz_prefers_the_request_and_warns_when_it_differs(trained_at_64, logs):
    model = attempt_load(trained_at_64["weights"])
    assert model.trained_imgsz == 64
    assert model_imgsz(None, model) == 64
    assert any("--imgsz 64: the size this model was trained at" in r.getMessage() for r in logs.records)
    assert model_imgsz(224, model) == 224 and model_imgsz([64, 64], model) == [64, 64]
    warnings = [r.getMessage() for r in logs.records if "differs from the 64 px" in r.getMessage()]
    assert len(warnings) == 1 and "--imgsz 224" in warnings[0]
    assert model_imgsz(None, attempt_load(trained_at_64["plain"])) == DEFAULT_IMGSZ  # a file that does not say


def test_val_predict_export_run_at_the_trained_size(trained_at_64, tmp_path, logs):
    w, data = trained_at_64["weights"], trained_at_64["data"]
    val.run(weights=w, data=data, workers=0, project=tmp_path, name="val", verbose=True)
    assert any("at shape (1, 3, 64, 64)" in r.getMessage() for r in logs.records)

    image = next((data / "val").rglob("*.jpg"))
    results = predict.run(weights=w, source=str(image), project=tmp_path, name="pred", nosave=True)
    model = attempt_load(w)
    x = classify_transforms(64, input_norm(model))(cv2.imread(str(image)))[None]
    assert torch.allclose(results[0].logits, model(x)[0], atol=1e-4)  # predicted at 64 px, not 224

    copy = tmp_path / "m64.pt"
    copy.write_bytes(w.read_bytes())
    onnx_file = export.run(weights=copy, include=["onnx"])[0]
    dims = [d.dim_value for d in onnx.load(onnx_file).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]


def test_ultralytics_export_carries_the_trained_size(trained_at_64, tmp_path):
    from ultralytics import YOLO

    copy = tmp_path / "m64.pt"
    copy.write_bytes(trained_at_64["weights"].read_bytes())
    file = export.run(weights=copy, include=["ultralytics"])[0]
    assert YOLO(file).overrides["imgsz"] == 64  # ultralytics' predict and val default to it


def test_rank_and_sensitivity_use_the_trained_size(trained_at_64, tmp_path, logs):
    w, data = trained_at_64["weights"], trained_at_64["data"]
    out = rank.run(weights=w, data=data, criterion="hrank", batches=1, batch_size=2, workers=0,
                   output=tmp_path / "r.pt")
    assert load_scores(out)[1]["imgsz"] == 64
    result = sensitivity.run(weights=w, data=data, batch_size=4, workers=0, images=4, calib_batches=1, rates="0.5",
                             ranks=str(out), project=tmp_path, name="sens")
    assert result["csv"].is_file()
    assert sum("the size this model was trained at" in r.getMessage() for r in logs.records) == 2
