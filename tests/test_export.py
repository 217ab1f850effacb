"""export.py: TorchScript and ONNX files reproduce the PyTorch model; sizes compare with the unpruned model."""

import ast
import io
import json
import subprocess
import sys

import pytest
import torch

from export import parse_include, run, unpruned_twin
from models.experimental import attempt_load
from utils.cli import UserError
from utils.onnx_export import to_onnx

from helpers import ROOT, make_checkpoint  # the same lively test checkpoints as the prediction tests

IMGSZ = 64


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "pruned.pt", nc=4, rate=0.5)


def reference_outputs(weights, x):
    with torch.no_grad():
        return attempt_load(weights)(x)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_pytorch_and_reports_sizes(pruned, logs):
    files = run(weights=pruned, imgsz=IMGSZ, include=["torchscript"])
    assert files == [str(pruned.with_suffix(".torchscript"))]
    extra = {"config.txt": ""}
    ts = torch.jit.load(files[0], _extra_files=extra)
    assert json.loads(extra["config.txt"])["names"] == ["c0", "c1", "c2", "c3"]
    x = torch.randn(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    expected = reference_outputs(pruned, x)
    assert expected.std() > 0.1  # a model whose outputs depend on the input, so the comparison means something
    torch.testing.assert_close(ts(x), expected, rtol=1e-4, atol=1e-4)
    messages = [r.getMessage() for r in logs.records]  # INFO and above
    assert any("outputs match PyTorch" in m for m in messages)
    assert any("of unpruned" in m for m in messages)  # size next to the rate-0 export's


def test_onnx_matches_pytorch_with_dynamic_shapes(pruned):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    files = run(weights=pruned, imgsz=IMGSZ, include=["onnx"], dynamic=True)
    assert files == [str(pruned.with_suffix(".onnx"))]
    session = ort.InferenceSession(files[0], providers=["CPUExecutionProvider"])
    assert ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"]) == ["c0", "c1", "c2", "c3"]
    x = torch.randn(3, 3, 96, 80, generator=torch.Generator().manual_seed(2))  # another batch and image size
    y = session.run(None, {"images": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(y), reference_outputs(pruned, x), rtol=1e-4, atol=1e-4)


def test_unpruned_twin(pruned, tmp_path):
    twin = unpruned_twin(attempt_load(pruned))
    assert twin is not None and not any(twin.yaml["rate"])
    assert sum(p.numel() for p in twin.parameters()) > 2 * sum(p.numel() for p in attempt_load(pruned).parameters())
    dense = make_checkpoint(tmp_path / "dense.pt", nc=4)
    assert unpruned_twin(attempt_load(dense)) is None  # nothing to compare against


def test_to_onnx_writes_a_path_or_a_buffer(tmp_path):
    """export.py's files and models/latency.py's timed graphs come from the one exporter (utils/onnx_export.py)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    conv, x = torch.nn.Conv2d(3, 4, 3).eval(), torch.randn(2, 3, 8, 8)
    buffer = to_onnx(conv, (x,), io.BytesIO(), ["x0"])
    path = to_onnx(conv, x, tmp_path / "conv.onnx", ["images"], ["output0"], dynamic_axes={"images": {0: "batch"}})
    with torch.no_grad():
        expected = conv(x)
    for model, name in ((buffer.getvalue(), "x0"), (str(path), "images")):
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [name]
        torch.testing.assert_close(torch.from_numpy(session.run(None, {name: x.numpy()})[0]), expected)


def test_bad_formats_and_missing_onnx(pruned, monkeypatch):
    assert parse_include(["torchscript,onnx", "onnx"]) == ["torchscript", "onnx"]
    with pytest.raises(ValueError, match="supported formats are torchscript, onnx"):
        parse_include(["tflite"])
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    with pytest.raises(UserError, match="pip install onnx"):
        run(weights=pruned, imgsz=IMGSZ, include=["onnx"])
    with pytest.raises(ValueError, match="--half"):
        run(weights=pruned, imgsz=IMGSZ, include=["torchscript"], half=True, device="cpu")


@pytest.mark.subprocess
@pytest.mark.slow
def test_cli_export(pruned, tmp_path):
    weights = tmp_path / "copy.pt"
    weights.write_bytes(pruned.read_bytes())
    out = subprocess.run([sys.executable, str(ROOT / "export.py"), "--weights", str(weights), "--imgsz", str(IMGSZ)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert weights.with_suffix(".torchscript").is_file()
    assert "export success" in out.stderr
