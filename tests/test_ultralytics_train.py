"""A model pruned here under `--plan ultralytics` and exported keeps its widths in ultralytics' own trainer:
`YOLO(file).train()` rebuilds it from the file's YAML, in a process that never imports this project."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

import export
from data.builtin import make_builtin_dataset
from models.allocation import ScoreDrop
from models.budget import plan_for_target
from models.criteria import compute_scores
from models.experimental import attempt_load
from models.io.checkpoints import checkpoint_dict, load_checkpoint, save_checkpoint
from models.io.ultralytics_export import ultralytics_model
from models.io.ultralytics_yaml import explicit_yaml, rebuild_mismatch
from models.yolo import ClassificationModel, load_yaml, with_plan
from utils.model_info import count_flops

from helpers import lively

# Run by a bare Python in the test's folder: only ultralytics is imported. It trains one epoch, records what the
# trainer built (parameters, logits before any step), then exports the trained best.pt to ONNX.
ULTRALYTICS_ROUND_TRIP = """
import json, sys, torch
from ultralytics import YOLO
file, data, out = sys.argv[1:4]
x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
seen = {}
def on_train_start(trainer):
    model = trainer.model.eval()
    with torch.no_grad():
        seen["logits"] = model(x)[1].tolist()  # ultralytics' Classify: (probabilities, logits) in eval mode
    seen["parameters"] = sum(p.numel() for p in model.parameters())
    model.train()
model = YOLO(file)
model.add_callback("on_train_start", on_train_start)
model.train(data=data, epochs=1, imgsz=32, batch=8, workers=0, device="cpu", project=out, name="ul", plots=False,
            amp=False, exist_ok=True, verbose=False)
best = YOLO(out + "/ul/weights/best.pt")
seen["trained_parameters"] = sum(p.numel() for p in best.model.parameters())
seen["onnx"] = best.export(format="onnx", imgsz=32)
json.dump(seen, open(out + "/seen.json", "w"))
"""


def pruned_checkpoint(path, cfg, rate=0.5, plan="ultralytics", target_flops=None):
    """A checkpoint pruned at `rate`, or at widths allocated for `target_flops` (uneven: by filter scores)."""
    d = with_plan(load_yaml(cfg), plan)
    widths = None
    if target_flops:
        drop = ScoreDrop(compute_scores(lively(ClassificationModel(d, nc=10)), "l1"))
        widths = plan_for_target(d, "flops", target_flops, 32, nc=10, drop=drop)
    model = lively(ClassificationModel(d, nc=10, rate=None if widths else rate, widths=widths))
    model.names = [f"c{i}" for i in range(10)]
    save_checkpoint(checkpoint_dict(model, opt={"imgsz": 32}), path)
    return attempt_load(path)


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("target_flops", [None, 0.3], ids=["rate0.5", "target-flops0.3"])
@pytest.mark.parametrize("cfg", ["yolov8n-cls.yaml", "yolo11n-cls.yaml", "yolo26n-cls.yaml"])
def test_ultralytics_trainer_keeps_the_pruned_model(cfg, target_flops, tmp_path):
    ours = pruned_checkpoint(tmp_path / "pruned.pt", cfg, target_flops=target_flops)
    unpruned = ClassificationModel(cfg, nc=10)
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours < 0.6 * sum(p.numel() for p in unpruned.parameters())
    if target_flops:  # uneven widths, at the budget
        kept = {g: w for m in ours.model for g, (w, full) in m.group_widths.items() if w < full}
        assert len(set(round(w / full, 2) for m in ours.model for g, (w, full) in m.group_widths.items())) > 3
        assert kept and 0.28 <= count_flops(ours.eval(), 32) / count_flops(unpruned.eval(), 32) <= 0.3
    file = export.run(weights=tmp_path / "pruned.pt", include=["ultralytics"])[0]
    data = make_builtin_dataset(tmp_path / "tiny", n_train=4, n_val=2, size=32)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"YOLO_CONFIG_DIR": str(tmp_path / "cfg")}
    res = subprocess.run([sys.executable, "-c", ULTRALYTICS_ROUND_TRIP, file, str(data), str(tmp_path / "out")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads((tmp_path / "out" / "seen.json").read_text())
    assert seen["parameters"] == n_ours == seen["trained_parameters"]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(torch.tensor(seen["logits"]), ours(x), atol=1e-4)  # the same model, before training
    assert os.path.isfile(seen["onnx"])
    results = pd.read_csv(tmp_path / "out" / "ul" / "results.csv")  # ultralytics' own log of the epoch
    assert len(results) == 1 and 0 <= results["metrics/accuracy_top1"].iloc[0] <= 1
    # ultralytics' own best.pt reads back here at the same widths
    trained = attempt_load(tmp_path / "out" / "ul" / "weights" / "best.pt")
    assert sum(p.numel() for p in trained.parameters()) == n_ours


@pytest.mark.slow
def test_the_exported_yaml_says_every_width(tmp_path):
    ours = pruned_checkpoint(tmp_path / "p.pt", "yolo11n-cls.yaml")
    file = export.run(weights=tmp_path / "p.pt", include=["ultralytics"])[0]
    d = load_checkpoint(file)["model"].yaml
    assert d["scales"] == {"p": [1.0, 1.0, 1 << 30]} and "rate" not in d and d["plan"] == "ultralytics"
    assert d["backbone"][2] == [-1, 1, "C3k2", [32, False, 0.25]]  # 256 x 0.25 x 0.5, hidden 8 = 32 x 0.25
    assert d["backbone"][9] == [-1, 1, "C2PSA", [128, 1.0]]
    yaml.safe_dump(d)  # plain YAML, as ultralytics writes it into its own run folder
    rebuilt = ClassificationModel(d)  # this project reads it back to the same shapes
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.slow
def test_widths_ultralytics_derives_are_kept_under_the_plan_and_checked_at_export(tmp_path, logs):
    free = ClassificationModel("yolo11n-cls.yaml", nc=10, rate=0.5)
    planned = ClassificationModel(with_plan(load_yaml("yolo11n-cls.yaml"), "ultralytics"), nc=10, rate=0.5)
    assert free.model[10].conv.conv.out_channels == 640 and planned.model[10].conv.conv.out_channels == 1280
    assert free.model[9].m[0].ffn[0].conv.out_channels == 128 and planned.model[9].m[0].ffn[0].conv.out_channels == 256
    free.names = planned.names = [f"c{i}" for i in range(10)]
    layers = ultralytics_model(free, 32).model
    assert rebuild_mismatch(explicit_yaml(free, free.yaml), layers).startswith("model.9.m.0.ffn.0.conv.weight")
    assert rebuild_mismatch(explicit_yaml(planned, planned.yaml), ultralytics_model(planned, 32).model) is None
    # without the plan the file is still written (predict, val and export work) with one warning about train()
    model = lively(free)
    save_checkpoint(checkpoint_dict(model), tmp_path / "free.pt")
    file = export.run(weights=tmp_path / "free.pt", include=["ultralytics"])[0]
    warnings = [r.getMessage() for r in logs.records if "YOLO(file).train()" in r.getMessage()]
    assert len(warnings) == 1 and "--plan ultralytics" in warnings[0] and "model.9.m.0.ffn.0" in warnings[0]
    assert load_checkpoint(file)["model"].yaml["scale"] == "n"  # the architecture's own YAML, plan and all


def test_plan_is_for_ultralytics_architectures():
    with pytest.raises(ValueError, match="for ultralytics architectures"):
        with_plan(load_yaml("yolov5n-cls.yaml"), "ultralytics")
    assert with_plan(load_yaml("yolov5n-cls.yaml"), "") == load_yaml("yolov5n-cls.yaml")


@pytest.mark.slow
def test_a_budget_is_checked_with_the_data_class_count(tmp_path):
    """Under the plan the head's 1280 x nc linear cannot shrink: reachability depends on nc, so the early check
    counts the data's classes (10 here), not the YAML's 1000."""
    from models.budget import check_reachable

    planned = with_plan(load_yaml("yolo11n-cls.yaml"), "ultralytics")
    check_reachable(planned, "flops", 0.3, 32, nc=10)
    with pytest.raises(ValueError, match="out of reach"):
        check_reachable(planned, "flops", 0.3, 32, nc=1000)
    from classify import train

    data = make_builtin_dataset(tmp_path / "tiny", n_train=2, n_val=1, size=32)
    out = train.run(cfg="yolo11n-cls.yaml", plan="ultralytics", target_flops=0.3, data=str(data), imgsz=32, epochs=1,
                    batch_size=8, workers=0, device="cpu", project=tmp_path / "runs", name="p")
    assert load_checkpoint(out["last"])["yaml"]["plan"] == "ultralytics"
    assert 0.28 <= out["gflops"] / out["unpruned_gflops"] <= 0.3
