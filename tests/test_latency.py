"""Latency budgets measured on the deployment runtime (models/latency.py): the table's layers are the model's
layers, its predictions and cache, the allocation's correction step, and the command-line options. Timings are
measured here but never asserted on (these machines are noisy); what could fail is shape, bookkeeping and plumbing."""

import json

import pytest
import torch

import models.latency as latency
from models.allocation import allocate_latency
from models.budget import plan_for_target
from models.costs import CostModel
from models.plan import Plan
from models.graph import trace_model
from models.latency import LatencyTable, PlanLatency, conv_specs, fit_layer, layer_module
from models.yolo import ClassificationModel

from helpers import make_checkpoint


@pytest.fixture
def quick_timing(monkeypatch):
    """One short round per measurement: the tests check what is measured, not how fast."""
    monkeypatch.setattr(latency, "TABLE_TIMING", (1, 0.0))
    monkeypatch.setattr(latency, "PLAN_TIMING", (1, 0.0))


@pytest.mark.parametrize("cfg", ["yolov5n-cls.yaml", "yolo11n-cls.yaml"])
def test_table_layers_rebuild_every_conv_of_the_plan(cfg):
    """The layers the table times are the model's own convs (channels, kernel, stride, groups, input size), at any
    plan, and each exports to ONNX and runs there."""
    model = ClassificationModel(cfg, nc=10).eval()
    specs = conv_specs(model, trace_model(model), 64)
    costs = CostModel(cfg, 64, nc=10)
    plan = Plan.uniform(costs.full, 0.4)
    pruned = ClassificationModel(cfg, nc=10, rate=0.0, widths=plan).eval()
    inputs = {}
    hooks = [pruned.get_submodule(n).conv.register_forward_hook(
        lambda m, i, o, n=n: inputs.__setitem__(n, i[0].shape)) for n in specs]
    pruned(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert set(specs) == set(inputs)
    widths = costs.widths(plan)
    runner = latency.Runner("onnxruntime")
    for name, spec in specs.items():
        layer, (x,) = layer_module(spec, costs.width_of(spec["in"], widths), costs.width_of(spec["out"], widths), 2)
        real = pruned.get_submodule(name).conv
        assert (layer.conv.in_channels, layer.conv.out_channels, layer.conv.kernel_size, layer.conv.stride,
                layer.conv.groups) == (real.in_channels, real.out_channels, real.kernel_size, real.stride,
                                       real.groups), name
        assert x.shape[1:] == inputs[name][1:], name
        runner.callable(layer, (x,))()  # exports and runs in ONNX Runtime


def test_layer_fit_and_table_prediction_and_json_round_trip():
    coef = fit_layer([(i, o, 1e-4 + 2e-6 * o + 3e-7 * i * o) for i, o in [(8, 8), (16, 8), (8, 16), (16, 16), (32, 24)]])
    assert coef == pytest.approx([1e-4, 2e-6, 0.0, 3e-7, 1e-4 + 2e-6 * 8 + 3e-7 * 64], abs=1e-9)
    costs = CostModel("yolov5n-cls.yaml", 32, nc=10)
    full = costs.widths({})
    layers = {"a": ([("model.0", full["model.0"])], [("model.1", full["model.1"])], [1e-3, 0.0, 0.0, 1e-6, 1e-3])}
    table = LatencyTable(0.01, layers)
    table.calibrate([table.layer_seconds(full, costs.width_of)], [0.01])  # one whole model: the rest is overhead
    assert table.fraction({}, costs) == pytest.approx(1.0)
    half = {"model.0": full["model.0"] // 2, "model.1": full["model.1"] // 2}
    saved = (full["model.0"] * full["model.1"] - half["model.0"] * half["model.1"]) * 1e-6  # the product term moves
    assert table.fraction(half, costs) == pytest.approx(1 - saved / 0.01)
    again = LatencyTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again.fraction(half, costs) == table.fraction(half, costs)


class FakeTiming:
    """A runtime whose time is a fixed overhead plus FLOPs, and a table that predicts it 20 % too fast."""

    def __init__(self, costs, bias=0.8):
        self.costs, self.bias, self.measured = costs, bias, []

    def true(self, plan):
        return 0.2 + 0.8 * self.costs.fraction(plan, "flops")

    def table(self, log=None):
        outer = self

        class Predicted:
            def fraction(self, plan, costs):
                return outer.true(plan) * outer.bias

        return Predicted()

    def fractions(self, plans):
        self.measured += plans
        return [self.true(p) for p in plans]


def test_latency_allocation_corrects_the_table_by_measuring_the_plan():
    costs = CostModel("yolov5n-cls.yaml", 32, nc=10)
    timing = FakeTiming(costs)
    plan = allocate_latency(costs, 0.5, timing)
    assert 0.9 * 0.5 <= timing.true(plan) <= 0.5
    assert 2 <= len(timing.measured) <= 4  # the first plan, predicted 20 % fast, misses; corrections land it
    with pytest.raises(ValueError, match="out of reach"):
        allocate_latency(costs, 0.1, FakeTiming(costs, bias=1.0))  # the overhead alone is 0.2


@pytest.mark.slow
def test_plan_latency_measures_once_then_reads_the_cache(tmp_path, quick_timing, monkeypatch):
    costs = CostModel("yolov5n-cls.yaml", 32, nc=10)
    timing = PlanLatency("yolov5n-cls.yaml", 32, nc=10, runtime="onnxruntime", batch=2, cache_dir=tmp_path)
    table = timing.table()
    assert len(list(tmp_path.glob("latency-onnxruntime-b2-*.json"))) == 1
    model = ClassificationModel("yolov5n-cls.yaml", nc=10)
    assert set(table.layers) == {n for n, m in model.named_modules()
                                 if isinstance(getattr(m, "conv", None), torch.nn.Conv2d)}
    assert 0.5 < table.fraction({}, costs) < 2 and table.full_seconds > 0  # calibrated on 4 noisy whole models
    plan = Plan.uniform(costs.full, 0.5)
    [fraction] = timing.fractions([plan])
    assert fraction > 0 and table.fraction(plan, costs) > 0
    monkeypatch.setattr(PlanLatency, "measure", lambda *a, **k: pytest.fail("the cached table was measured again"))
    again = PlanLatency("yolov5n-cls.yaml", 32, nc=10, runtime="onnxruntime", batch=2, cache_dir=tmp_path).table()
    assert again.to_json() == table.to_json()
    other_batch = PlanLatency("yolov5n-cls.yaml", 32, nc=10, runtime="onnxruntime", batch=1, cache_dir=tmp_path)
    assert other_batch.key() != timing.key()  # another batch (or runtime, threads, machine) is another table


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["yolov5n-cls.yaml", "yolo11n-cls.yaml"])
def test_target_latency_plan_on_both_runtimes(cfg, tmp_path, counted_timing):
    """Exported and run on each runtime, timed by a deterministic clock: the plan lands in the band."""
    costs = CostModel(cfg, 64, nc=10)
    for runtime in ("onnxruntime", "torch"):
        plan = plan_for_target(cfg, "latency", 0.5, 64, nc=10, runtime=runtime, cache_dir=tmp_path)
        assert set(plan) == set(costs.full)
        model = ClassificationModel(cfg, nc=10, rate=0.0, widths=plan)  # a buildable plan
        timing = PlanLatency(cfg, 64, nc=10, runtime=runtime)
        assert 0.45 <= timing.fractions([plan])[0] <= 0.5 and model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    assert len(list(tmp_path.glob("latency-*.json"))) == 2


@pytest.mark.slow
def test_rank_writes_a_latency_plan_and_bad_latency_flags_are_one_line(tmp_path, counted_timing, capsys, monkeypatch):
    from classify import rank
    from test_cli import cli

    weights = make_checkpoint(tmp_path / "w.pt", nc=10)
    out = tmp_path / "ranks" / "scores.pt"
    rank.run(weights=weights, criterion="l1", imgsz=32, output=out, target_latency=0.6,
             latency_runtime="onnxruntime", workers=0)
    assert out.with_suffix(".yaml").is_file() and list(out.parent.glob("latency-onnxruntime-b1-*.json"))
    code, err = cli(rank, ["--weights", str(weights), "--criterion", "l1", "--target-latency", "0.5",
                           "--latency-batch", "0", "--output", str(out)], capsys, monkeypatch)
    assert code == 2 and "--latency-batch must be at least 1" in err and "Traceback" not in err


def test_latency_plans_snap_to_the_runtimes_fast_widths():
    from models.allocation import allocate
    from models.latency import fast_width_step

    assert fast_width_step("torch") == 8 and fast_width_step("onnxruntime") in (8, 16)
    costs = CostModel("yolov5n-cls.yaml", 32, nc=10)
    plan = allocate(costs, 0.4, "flops", step=16, tolerance=0.2)
    assert all(w % 16 == 0 or w in (8, costs.full[g]) for g, w in plan.items())
    assert any(w % 16 for w in allocate(costs, 0.4, "flops").values())  # the default grid has odd multiples of 8


@pytest.mark.slow
def test_train_and_prune_with_a_latency_target_end_to_end(tmp_path, counted_timing, monkeypatch):
    """--target-latency through classify/train.py (PyTorch timing) and classify/prune.py (ONNX Runtime, the default):
    the plan is in the checkpoint, its (deterministic-clock) latency in the band, the table cached in the project."""
    import classify.train as train
    from classify import prune as pipeline
    from data.builtin import make_builtin_dataset
    from models.experimental import attempt_load

    measure = pipeline.group_sensitivity  # one rate and one calibration batch keep the test fast
    monkeypatch.setattr(pipeline, "group_sensitivity",
                        lambda *a, **k: measure(*a, **{**k, "rates": (0.5,), "calib_batches": 1, "images": 16}))
    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=64)
    weights = make_checkpoint(tmp_path / "w.pt", nc=10)
    common = dict(data=str(data), imgsz=64, batch_size=16, workers=0, device="cpu", project=str(tmp_path / "runs"))
    result = train.run(weights=str(weights), epochs=1, name="train", target_latency=0.5, latency_runtime="torch",
                       criterion="l1", **common)
    out = pipeline.run(weights=str(weights), finetune_epochs=1, name="prune", target_latency=0.5, criterion="l1",
                       **common)
    for best, runtime in ((result["best"], "torch"), (out["pruned"], "onnxruntime")):
        widths = torch.load(best, weights_only=True)["yaml"]["widths"]
        timing = PlanLatency("yolov5n-cls.yaml", 64, nc=10, runtime=runtime)
        assert 0.45 <= timing.fractions([widths])[0] <= 0.5 and attempt_load(best).nc == 10
        assert list((tmp_path / "runs").glob(f"latency-{runtime}-b1-*.json"))
