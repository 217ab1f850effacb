"""export.py --include ultralytics: pruned classifiers as ultralytics checkpoints that ultralytics' own YOLO() predicts,
validates and exports with, giving this project's classes and probabilities."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no checks or downloads over the network

from export import main, parse_opt, run  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.io.checkpoints import checkpoint_dict, save_checkpoint  # noqa: E402
from models.io.ultralytics_export import (UnsupportedModelError, export_ultralytics, project_state_dict,  # noqa: E402
                                      ultralytics_logits, ultralytics_model)
from models.yolo import ClassificationModel, classifier_yaml, input_norm, load_yaml  # noqa: E402
from utils.augmentations import classify_transforms  # noqa: E402
from utils.cli import UserError, run_cli  # noqa: E402

from helpers import ROOT, lively  # noqa: E402

IMGSZ, NC = 64, 5
NAMES = [f"c{i}" for i in range(NC)]
# Unequal widths where the rules allow them: tied halves equal (model.4), C2PSA's output narrower than its input.
PLAN = {"model.0": 12, "model.2.m.0.cv1": 3, "model.2.cv2": 40, "model.4.cv1.a": 20, "model.4.stream": 20,
        "model.6.m.0.m.1.cv1": 20, "model.6.cv2": 90, "model.7": 200, "model.9.m.0.ffn.0": 160, "model.9.cv2": 180,
        "model.10.conv": 500}
CASES = {"yolov8n": ("yolov8n-cls.yaml", {"rate": 0.5}), "yolo11n": ("yolo11n-cls.yaml", {"rate": 0.5}),
         "yolo11n-plan": ("yolo11n-cls.yaml", {"widths": PLAN}), "yolo26n": ("yolo26n-cls.yaml", {"rate": 0.5})}
YOLOV5_CASES = {"yolov5n": ("yolov5n-cls.yaml", {"rate": 0.5}),
                "yolov5n-sppf": (classifier_yaml("yolov5n.yaml", cutoff=11), {"rate": 0.5})}  # keeps the SPPF


def sample_images(n=6, seed=0):
    """n BGR images of IMGSZ x IMGSZ (no resizing, so both pipelines see the same pixels): a colour and a box."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        im = np.empty((IMGSZ, IMGSZ, 3), np.uint8)
        im[:] = rng.integers(0, 256, 3)
        x, y = (int(v) for v in rng.integers(0, IMGSZ // 2, 2))
        cv2.rectangle(im, (x, y), (x + IMGSZ // 2, y + IMGSZ // 3), rng.integers(0, 256, 3).tolist(), -1)
        images.append(im)
    return images


def project_inputs(images, model=None):
    """The batch this project's predict.py makes of the images for `model` (crop, RGB, the model's normalisation:
    ImageNet's for YOLOv5's, none for ultralytics')."""
    transform = classify_transforms(IMGSZ, input_norm(model))
    return torch.stack([transform(im) for im in images])


def build(case):
    """A lively pruned classifier whose top class varies over test_images (logits centred on them)."""
    cfg, plan = {**CASES, **YOLOV5_CASES}[case]
    model = lively(ClassificationModel(cfg, nc=NC, **plan)).eval()
    model.names = list(NAMES)
    with torch.no_grad():
        model.model[-1].linear.bias -= model(project_inputs(sample_images(), model)).mean(0)
    return model


def write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    files = [str(folder / f"{i}.png") for i in range(len(images))]
    for f, im in zip(files, images):
        cv2.imwrite(f, im)
    return files


def project_probabilities(weights, images):
    model = attempt_load(weights)
    with torch.no_grad():
        return model(project_inputs(images, model)).softmax(1)


def ultralytics_probabilities(results):
    return torch.stack([r.probs.data.float().cpu() for r in results])


def assert_same_predictions(probs, expected):
    assert probs.argmax(1).tolist() == expected.argmax(1).tolist()
    torch.testing.assert_close(probs, expected, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def plan_export(tmp_path_factory):
    """The widths-plan model's checkpoint and its ultralytics file, shared by the tests that only read them."""
    folder = tmp_path_factory.mktemp("plan")
    weights = save_checkpoint(checkpoint_dict(build("yolo11n-plan")), folder / "best.pt")
    (file,) = run(weights=weights, imgsz=IMGSZ, include=["ultralytics"])
    return weights, file


@pytest.mark.parametrize("case", [*CASES, *YOLOV5_CASES])
def test_model_level_outputs_and_plan(case):
    """Converted module by module, the model gives our logits on ultralytics' inputs; its YAML and weights rebuild
    this project's model."""
    model = build(case)
    ul = ultralytics_model(model, IMGSZ)
    assert all(type(m).__module__.startswith(("ultralytics.", "torch.nn.")) for m in ul.modules())
    x = torch.randn(3, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in input_norm(model))
    assert (case in YOLOV5_CASES) == ("input_normalization" in ul.yaml)  # only YOLOv5's need a normalising layer
    with torch.no_grad():
        expected = model(x)
        probs, logits = ul(x * std + mean)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(probs, expected.softmax(1), atol=1e-5, rtol=0)
    rebuilt = ClassificationModel(ul.yaml).eval()  # the pruning plan travels in the YAML
    rebuilt.load_state_dict(project_state_dict(ul))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_yolo_predict_matches_project(case, tmp_path):
    from ultralytics import YOLO
    from ultralytics.nn.tasks import torch_safe_load

    weights = save_checkpoint(checkpoint_dict(build(case)), tmp_path / "best.pt")
    files = run(weights=weights, imgsz=IMGSZ, include=["ultralytics"])
    assert files == [str(tmp_path / "best_ultralytics.pt")]
    images = sample_images()
    model = YOLO(files[0])
    assert model.task == "classify" and model.names == dict(enumerate(NAMES))
    probs = ultralytics_probabilities(model.predict(write_pngs(tmp_path / "images", images), verbose=False))
    expected = project_probabilities(weights, images)
    assert len(set(expected.argmax(1).tolist())) > 1  # the classes depend on the image
    assert_same_predictions(probs, expected)
    torch_safe_load(files[0], safe_only=True)  # only ultralytics and torch classes: its restricted loader reads it


def test_yolo_val_top1_matches_project(plan_export, tmp_path):
    """Each val image filed under our predicted class, or the next one for every other image: top-1 is known."""
    from ultralytics import YOLO

    weights, file = plan_export
    images = sample_images()
    predicted = project_probabilities(weights, images).argmax(1).tolist()
    labels = [c if i % 3 else (c + 1) % NC for i, c in enumerate(predicted)]
    root = tmp_path / "data"
    for split in ("train", "val"):
        for c in range(NC):
            write_pngs(root / split / NAMES[c], [im for im, label in zip(images, labels) if label == c])
    metrics = YOLO(file).val(data=str(root), imgsz=IMGSZ, batch=4, workers=0, device="cpu", plots=False,
                             project=str(tmp_path / "runs"), name="val", verbose=False)
    assert metrics.top1 == pytest.approx(sum(p == y for p, y in zip(predicted, labels)) / len(images))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation notices
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_yolo_export_predicts_the_same(plan_export, fmt, tmp_path):
    from ultralytics import YOLO

    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    weights, file = plan_export
    copy = tmp_path / "model_ultralytics.pt"  # ultralytics writes next to its input: keep the shared folder as is
    copy.write_bytes(Path(file).read_bytes())
    options = {"simplify": False} if fmt == "onnx" else {}  # simplifying would try to install onnxslim
    exported = YOLO(str(copy)).export(format=fmt, imgsz=IMGSZ, **options)
    images = sample_images()
    probs = ultralytics_probabilities(YOLO(exported, task="classify").predict(
        write_pngs(tmp_path / "images", images), imgsz=IMGSZ, verbose=False))
    assert_same_predictions(probs, project_probabilities(weights, images))


@pytest.mark.subprocess
@pytest.mark.slow
def test_cli_writes_ultralytics_checkpoint(plan_export, tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes(plan_export[0].read_bytes())
    out = subprocess.run([sys.executable, str(ROOT / "export.py"), "--weights", str(weights), "--imgsz", str(IMGSZ),
                          "--include", "ultralytics"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "best_ultralytics.pt").is_file()
    assert "Ultralytics: outputs match PyTorch" in out.stderr
    assert "of unpruned" in out.stderr  # its size next to the unpruned model's, as for the other formats


def test_half_weights(tmp_path):
    """--half (CUDA only in export.py) stores float16 weights, as ultralytics' own files: same classes, close probs."""
    model = build("yolo11n")
    file = export_ultralytics(model, tmp_path / "half_ultralytics.pt", imgsz=IMGSZ, half=True)
    x = project_inputs(sample_images())
    ckpt = torch.load(file, weights_only=False)
    assert {p.dtype for p in ckpt["model"].parameters()} == {torch.float16}
    with torch.no_grad():
        expected = model(x).softmax(1)
    probs = ultralytics_logits(file, x).softmax(1)
    assert probs.argmax(1).tolist() == expected.argmax(1).tolist()
    torch.testing.assert_close(probs, expected, atol=1e-2, rtol=0)


def test_unconvertible_model_is_refused_before_writing(tmp_path, capsys, monkeypatch):
    d = load_yaml("yolov5n-cls.yaml")
    d["backbone"][0] = [-1, 1, "Focus", [64, 3]]  # YOLOv5 <= v5.0's stem: ultralytics has no Focus
    weights = save_checkpoint(checkpoint_dict(ClassificationModel(d, nc=NC)), tmp_path / "focus.pt")
    with pytest.raises(UnsupportedModelError, match=r"Focus \(model.0\) has no ultralytics counterpart"):
        run(weights=weights, imgsz=IMGSZ, include=["torchscript", "ultralytics"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["focus.pt"]  # nothing written, not even the torchscript
    with pytest.raises(SystemExit) as e:
        run_cli(main, parse_opt(["--weights", str(weights), "--include", "ultralytics"]), prog="export.py")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("export.py: error: cannot export to ultralytics: Focus") and "\n" not in err
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # as if ultralytics were not installed
    with pytest.raises(UserError, match="pip install ultralytics"):
        run(weights=weights, imgsz=IMGSZ, include=["ultralytics"])


def test_same_attributes_as_ultralytics_constructor():
    """ultralytics_model skips ultralytics' constructor: it must still set every attribute the constructor sets."""
    from ultralytics.nn.tasks import ClassificationModel as UltralyticsClassifier

    reference = UltralyticsClassifier("yolov8n-cls.yaml", nc=NC, verbose=False)
    ours = ultralytics_model(build("yolov8n"), IMGSZ)
    assert set(vars(reference)) <= set(vars(ours))
    assert type(ours.stride) is type(reference.stride) and ours.stride.tolist() == reference.stride.tolist()


@pytest.mark.parametrize("case", ["yolo11n-plan", "yolov5n-sppf"])
def test_exported_file_reads_back_here(case, tmp_path):
    """This project reads its own ultralytics export back: rebuilt from the YAML (plan included), without the
    normalising layer a YOLOv5-family export starts with (this project normalises while preprocessing)."""
    model = build(case)
    export_ultralytics(model, tmp_path / "m_ultralytics.pt", IMGSZ)
    back = attempt_load(tmp_path / "m_ultralytics.pt")
    assert type(back) is ClassificationModel and back.names == NAMES
    x = project_inputs(sample_images(), model)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
