"""Exported ONNX files, FP32 and INT8 (export.py --int8), validated and predicted with as checkpoints are."""

import sys

import onnx
import pytest

import export
from classify import predict, val
from data.builtin import make_builtin_dataset
from models.yolo import input_norm
from utils.cli import UserError
from utils.onnx_model import OnnxClassifier

from helpers import ROOT, make_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    data = make_builtin_dataset(d / "tiny", n_train=8, n_val=3, size=32)
    weights = make_checkpoint(d / "m.pt", nc=10, rate=0.5, imgsz=32)
    fp32, int8 = export.run(weights=weights, include=["onnx"], int8=True, data=str(data))
    return {"data": data, "pt": weights, "fp32": fp32, "int8": int8}


@pytest.mark.slow
def test_int8_file_is_written_beside_the_fp32_one_and_keeps_its_metadata(exported):
    assert exported["int8"].endswith("m-int8.onnx") and exported["fp32"].endswith("m.onnx")
    meta = {p.key: p.value for p in onnx.load(exported["int8"]).metadata_props}
    assert meta == {p.key: p.value for p in onnx.load(exported["fp32"]).metadata_props}
    ops = {n.op_type for n in onnx.load(exported["int8"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ form: ONNX Runtime runs integer kernels
    model = OnnxClassifier(exported["int8"])
    assert model.names == [f"c{i}" for i in range(10)] and model.trained_imgsz == 32


def test_val_and_predict_run_onnx_files_as_they_run_checkpoints(exported, tmp_path):
    data = exported["data"]
    pt = val.run(weights=exported["pt"], data=data, workers=0, project=tmp_path, name="pt")
    fp32 = val.run(weights=exported["fp32"], data=data, workers=0, project=tmp_path, name="fp32")  # batches of 1
    assert fp32[:2] == pytest.approx(pt[:2], abs=1e-9)  # the same predictions: top-1 and top-5 equal
    int8 = val.run(weights=exported["int8"], data=data, workers=0, project=tmp_path, name="int8")
    assert 0 <= int8[0] <= 1
    image = next((data / "val").rglob("*.jpg"))
    a, b = (predict.run(weights=w, source=str(image), project=tmp_path, name=n, nosave=True)[0]
            for w, n in ((exported["pt"], "p1"), (exported["fp32"], "p2")))
    assert a.top5 == b.top5 and (a.probs - b.probs).abs().max() < 1e-4


def test_int8_needs_onnx_and_calibration_data(exported):
    with pytest.raises(UserError, match="--int8 quantizes the ONNX export"):
        export.run(weights=exported["pt"], include=["onnx"], int8=True)
    with pytest.raises(UserError, match="--int8 quantizes the ONNX export"):
        export.run(weights=exported["pt"], include=["torchscript"], int8=True, data=str(exported["data"]))


def test_a_file_named_onnx_that_is_not_one_is_one_line(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="is not an ONNX model ONNX Runtime can run"):
        val.run(weights=bad, data="builtin10", workers=0, project=tmp_path)


@pytest.mark.slow
def test_int8_benchmark_reports_each_file(exported, tmp_path, logs):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import int8 as bench

    unpruned = make_checkpoint(tmp_path / "full.pt", nc=10, imgsz=32)
    bench.main(bench.parse_opt(["--weights", str(unpruned), str(exported["pt"]), "--data", str(exported["data"]),
                                "--batch", "1", "--rounds", "1"]))
    table = [r.getMessage() for r in logs.records if r.getMessage().startswith("| ")]
    assert [line.split(" | ")[0] for line in table[2:]] == ["| unpruned", "| pruned", "| pruned + INT8"]
    assert "(1.00x / 1.00x, 1.00)" in table[2]  # the unpruned file against itself
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.pt"]  # exports went to a temporary folder


def test_another_size_than_the_file_takes_is_refused_before_any_work(exported, tmp_path):
    with pytest.raises(ValueError, match="takes 32x32 images, not 64x64: leave --imgsz out"):
        val.run(weights=exported["fp32"], data=exported["data"], imgsz=64, workers=0, project=tmp_path / "runs")
    image = next((exported["data"] / "val").rglob("*.jpg"))
    with pytest.raises(ValueError, match="takes 32x32 images, not 64x64"):
        predict.run(weights=exported["fp32"], source=str(image), imgsz=64, project=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_file_without_its_normalisation_warns_and_assumes_yolov5s(exported, tmp_path, logs):
    model = onnx.load(exported["fp32"])
    kept = [p for p in model.metadata_props if p.key != "normalization"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "old.onnx"))
    from utils.augmentations import IMAGENET_NORM, UNIT_NORM

    assert input_norm(OnnxClassifier(tmp_path / "old.onnx")) == IMAGENET_NORM
    assert any("does not say how its inputs are normalised" in r.getMessage() for r in logs.records)
    # a file that says: an ultralytics architecture takes raw [0, 1] pixels, and its ONNX file records that
    yolo11 = make_checkpoint(tmp_path / "y.pt", nc=10, cfg="yolo11n-cls.yaml", imgsz=32)
    assert input_norm(OnnxClassifier(export.run(weights=yolo11, include=["onnx"])[0])) == UNIT_NORM
