"""benchmarks/train_throughput.py: finds upstream's checkout, runs both commands alternated and reads their results;
a fake upstream checkout (same command line, same results.csv) stands in for YOLOv5, which cannot be fetched here."""

import sys
import textwrap

import cv2
import numpy as np
import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import train_throughput  # noqa: E402

FAKE_TRAIN = '''
import argparse, pathlib, torch
p = argparse.ArgumentParser()
for flag in ("--model", "--data", "--imgsz", "--epochs", "--batch-size", "--workers", "--optimizer", "--pretrained",
             "--device", "--project", "--name"):
    p.add_argument(flag)
p.add_argument("--exist-ok", action="store_true")
opt = p.parse_args()
assert isinstance(torch.load(opt.model, weights_only=False)["model"], torch.nn.Module)
run = pathlib.Path(opt.project) / opt.name
run.mkdir(parents=True, exist_ok=True)
(run / "results.csv").write_text("      epoch,  metrics/accuracy_top1\\n          0,               0.25\\n")
'''


def fake_upstream(root):
    (root / "classify").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "classify" / "train.py").write_text(textwrap.dedent(FAKE_TRAIN))
    (root / "models" / "yolo.py").write_text("import torch\n\ndef DetectionModel(cfg):\n    return torch.nn.Linear(1, 1)\n")
    return root


def tiny_dataset(root):
    """train/ and val/ with two classes of two 16-px images: both commands finish in seconds."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(root / split / c / f"{i}.png"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return root


def test_upstream_checkout_from_flag_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(train_throughput.UPSTREAM_ENV, raising=False)
    assert train_throughput.upstream_checkout("") is None  # → the imitation, announced as such
    with pytest.raises(FileNotFoundError, match="not a YOLOv5 checkout"):
        train_throughput.upstream_checkout(str(tmp_path))
    checkout = fake_upstream(tmp_path / "yolov5")
    monkeypatch.setenv(train_throughput.UPSTREAM_ENV, str(checkout))
    assert train_throughput.upstream_checkout("") == checkout


@pytest.mark.slow
def test_comparison_alternates_both_commands_and_reads_their_results(tmp_path, capsys):
    checkout = fake_upstream(tmp_path / "yolov5")
    times = train_throughput.compare_with_upstream(checkout, str(tiny_dataset(tmp_path / "data")), "yolov5n-cls.yaml",
                                                   imgsz=16, batch_size=4, epochs=1, workers=0, device="cpu", rounds=2)
    assert {k: len(v) for k, v in times.items()} == {"upstream": 2, "ours": 2} and min(times["ours"]) > 0
    out = capsys.readouterr().out
    rounds = [line.split()[2] for line in out.splitlines() if line.startswith("round ")]
    assert rounds == ["upstream", "ours", "ours", "upstream"]  # who goes first alternates
    assert "final top-1 0.250" in out and "ours/upstream wall time:" in out


def test_comparison_needs_a_yolov5_classifier_yaml(tmp_path):
    with pytest.raises(ValueError, match="YOLOv5 classifier YAML"):
        train_throughput.upstream_start_weights(fake_upstream(tmp_path / "yolov5"), "yolo11n-cls.yaml", tmp_path)


def test_space_to_depth_stem_is_the_same_function_as_the_6x6_stride_2_stem():
    import torch

    import stem
    from models.yolo import ClassificationModel

    torch.manual_seed(0)
    fused = ClassificationModel("yolov5n-cls.yaml", nc=5).eval().fuse()
    conv = fused.model[0].conv
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        twin = stem.SpaceToDepthConv(conv)
        assert twin.conv.kernel_size == (3, 3) and twin.conv.in_channels == 12
        torch.testing.assert_close(twin(x), conv(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stem.rewritten(fused)(x), fused(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="even square kernel"):
        stem.SpaceToDepthConv(torch.nn.Conv2d(3, 8, 3, 2, 1))


@pytest.mark.slow
def test_pareto_trains_uniform_and_allocated_plans_of_the_same_flops(data, tmp_path):
    """benchmarks/pareto.py on a tiny dataset: one rate, one seed, one epoch; both rows land near the same FLOPs."""
    import pandas as pd

    import pareto
    from helpers import make_checkpoint

    weights = make_checkpoint(tmp_path / "base.pt", nc=10)
    pareto.main(pareto.parse_opt(["--weights", str(weights), "--data", str(data), "--criterion", "bn", "--rates",
                                  "0.5", "--seeds", "0", "--finetune-epochs", "1", "--workers", "0", "--project",
                                  str(tmp_path / "runs")]))
    rows = pd.read_csv(tmp_path / "runs" / "exp" / "pareto.csv").set_index("method")
    assert list(rows.index) == ["uniform", "allocated"]
    assert rows.loc["allocated", "flops"] == pytest.approx(rows.loc["uniform", "flops"], abs=0.05)
    assert 0.2 < rows.loc["uniform", "flops"] < 0.4 and rows["top1"].between(0, 1).all()
