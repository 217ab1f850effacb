"""Width plans, their costs and their allocation: widths: YAMLs, meta-device costs, budgets, sensitivity."""

import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from data.builtin import make_builtin_dataset
from models.allocation import ScoreDrop, SensitivityDrop, allocate
from models.budget import chosen_target
from models.costs import CostModel, plan_cost
from models.plan import Plan
from models.criteria import compute_scores
from models.experimental import attempt_load
from models.io.checkpoints import checkpoint_dict, load_checkpoint, save_checkpoint
from models.io.ranks import load_scores
from models.prune import channel_groups, load_model, needs_scores, select_channels
from models.sensitivity import sensitivity, silence
from models.yolo import ClassificationModel

from helpers import ROOT, lively, silence_pruned_filters
from test_prune import X, _source

CFG = "yolov5n-cls.yaml"
PLAN = {"model.0": 8, "model.1": 24, "model.2.stream": 8, "model.2.m.0.cv1": 16, "model.2.cv2": 8,
        "model.4.m.1.cv1": 8, "model.4.cv3": 40, "model.6.stream": 16, "model.7": 96, "model.8.cv2": 32,
        "model.9.conv": 320}


def test_widths_plan_builds_those_widths_and_rate_models_are_unchanged():
    model = ClassificationModel(CFG, nc=10, widths=PLAN)
    channels = {g.name: g.channels for g in channel_groups(model)}
    assert all(channels[g] == w for g, w in PLAN.items())
    assert channels["model.3"] == 64 and channels["model.4.stream"] == 32  # groups the plan leaves alone
    assert model.model[2].m[0].cv1.conv.weight.shape == (16, 8, 1, 1)  # the bottleneck reads the 8-wide stream
    assert model.model[2].cv3.conv.in_channels == 8 + 8  # cat(stream, cv2)
    assert needs_scores(model) and model.eval()(X).shape == (2, 10)
    # A plan equal to a rate's widths builds the same model as the rate, and .group_widths records (kept, unpruned).
    rated = ClassificationModel(CFG, nc=10, rate=0.5)
    full = {g.name: g.channels for g in channel_groups(ClassificationModel(CFG, nc=10))}
    planned = ClassificationModel(CFG, nc=10, widths=Plan.uniform(full, 0.5))
    assert {k: v.shape for k, v in planned.state_dict().items()} == {k: v.shape for k, v in rated.state_dict().items()}
    assert rated.model[4].group_widths["model.4.stream"] == (16, 32)


def test_widths_yaml_round_trips_through_a_checkpoint(tmp_path):
    model = lively(ClassificationModel(CFG, nc=4, widths=PLAN)).eval()
    path = save_checkpoint(checkpoint_dict(model), tmp_path / "best.pt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["yaml"]["widths"] == PLAN
    rebuilt = attempt_load(path)
    assert torch.equal(rebuilt(X), model(X))
    assert ClassificationModel(load_checkpoint(path)["yaml"]).model[9].conv.conv.out_channels == 320
    # A rate argument is a whole new plan: the YAML's widths give way.
    assert ClassificationModel(ckpt["yaml"], rate=0.0).model[9].conv.conv.out_channels == 1280


@pytest.mark.parametrize("widths, words", [({"model.99": 8}, "no channel group named model.99"),
                                           ({"model.0": 17}, "between 1 and its 16"),
                                           ({"model.0": 0}, "between 1 and its 16"),
                                           ({"model.0": 7.5}, "whole number")])
def test_bad_widths_are_one_line_errors(widths, words):
    with pytest.raises(ValueError, match=words) as e:
        ClassificationModel(CFG, widths=widths)
    assert "\n" not in str(e.value)


def test_dead_filters_change_nothing_under_a_non_uniform_plan():
    src = _source()
    model = ClassificationModel(CFG, nc=10, widths=PLAN)
    load_model(model, src, silence_pruned_filters(src, model, seed=4))
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5


def test_a_plan_pruned_source_prunes_further_and_copies_as_is():
    src = load_model(ClassificationModel(CFG, nc=10, widths=PLAN), _source(), compute_scores(_source(), "l1"))
    same = load_model(ClassificationModel(src.yaml, nc=10), src)
    assert (same.eval()(X) - src.eval()(X)).abs().max() <= 1e-5
    further = load_model(ClassificationModel(CFG, nc=10, widths={**PLAN, "model.9.conv": 160}), src,
                         compute_scores(src, "l1"))
    assert further.model[9].conv.conv.out_channels == 160


@pytest.mark.parametrize("imgsz", [32, 64])
def test_cost_model_equals_flop_counter_on_a_real_build(imgsz):
    costs = CostModel(CFG, imgsz, nc=10)
    for plan in ({}, PLAN, Plan.uniform(costs.full, 0.3)):
        model = ClassificationModel(CFG, nc=10, widths=plan or None).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, imgsz, imgsz))
        real = {"flops": counter.get_total_flops(), "params": sum(p.numel() for p in model.parameters())}
        assert costs.cost(plan) == real == plan_cost(CFG, plan, imgsz, nc=10)


@pytest.mark.parametrize("metric", ["flops", "params"])
@pytest.mark.parametrize("target", [0.3, 0.5, 0.8])
def test_allocation_lands_in_the_band(metric, target):
    costs = CostModel(CFG, 32, nc=10)
    plan = allocate(costs, target, metric)
    assert 0.95 * target <= costs.fraction(plan, metric) <= target
    assert all(w % 8 == 0 and 8 <= w <= costs.full[g] for g, w in plan.items())


def test_allocation_follows_predicted_drops():
    """A group predicted to lose nothing is pruned first; one predicted to collapse is left whole."""
    costs = CostModel(CFG, 32, nc=10)
    fragile = {"model.0", "model.2.stream"}
    plan = allocate(costs, 0.5, "flops", drop=lambda g, w: (1 - w / costs.full[g]) * (100 if g in fragile else 1))
    assert all(plan[g] == costs.full[g] for g in fragile)


def test_allocation_floor_keeps_every_group_at_a_share_of_its_uniform_width():
    """With min_share the groups predicted to be cheapest to cut still keep half their uniform-plan width; without
    it they drop to the narrowest grid width."""
    from models.allocation import uniform_rate_for

    costs = CostModel(CFG, 32, nc=10)
    cheap = {"model.1", "model.3"}
    drop = lambda g, w: (1 - w / costs.full[g]) * (0.01 if g in cheap else 1)  # noqa: E731
    free = allocate(costs, 0.3, "flops", drop=drop, min_share=0)
    assert all(free[g] == 8 for g in cheap)
    _, uniform = uniform_rate_for(costs, 0.3, "flops")
    floored = allocate(costs, 0.3, "flops", drop=drop, min_share=0.5)
    assert all(floored[g] >= 0.5 * uniform[g] for g in floored) and any(floored[g] > 8 for g in cheap)
    assert 0.95 * 0.3 <= costs.fraction(floored, "flops") <= 0.3


def test_impossible_or_conflicting_targets_are_one_line():
    costs = CostModel(CFG, 32, nc=10)
    with pytest.raises(ValueError, match="out of reach") as e:
        allocate(costs, 0.01, "flops")
    assert "\n" not in str(e.value)
    for bad in (0, 1.5, -0.2, float("nan")):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            chosen_target(target_flops=bad)
    with pytest.raises(ValueError, match="not both"):
        chosen_target(target_params=0.5, rate="0.3")
    with pytest.raises(ValueError, match="one budget"):
        chosen_target(target_flops=0.5, target_params=0.5)
    assert chosen_target(target_latency=0.5) == ("latency", 0.5)


def test_drop_predictors():
    table = pd.DataFrame({"group": ["a"] * 3, "rate": [0.25, 0.5, 0.75], "width": [24, 16, 8], "full": [32] * 3,
                          "top1": [0.9, 0.95, 0.5]})  # noisy: narrower looks better at 16
    drop = SensitivityDrop(table, base=0.9)
    assert drop("a", 32) == 0 and drop("a", 24) == pytest.approx(0.0)
    assert drop("a", 16) == pytest.approx(0.0) and drop("a", 12) == pytest.approx(0.2)  # interpolated to 0.4 at 8
    assert drop("a", 4) > drop("a", 8) == pytest.approx(0.4)
    assert drop("b", 8) == 0  # a group without a curve costs nothing
    scores = ScoreDrop({"g": torch.tensor([0.0, 1.0, 3.0, 4.0])})
    assert scores("g", 4) == 0 and scores("g", 3) == 0 and scores("g", 2) == pytest.approx(0.25 / 4)


def test_silencing_equals_pruning_and_sensitivity_table(tmp_path):
    src = _source()
    scores = compute_scores(src, "l1")
    group = next(g for g in channel_groups(src) if g.name == "model.4.stream")
    keep = select_channels(scores[group.name], 16)
    dropped = torch.ones(32, dtype=torch.bool)
    dropped[keep] = False
    pruned = load_model(ClassificationModel(CFG, nc=10, widths={group.name: 16}), src, scores).eval()
    silence(src, group, dropped)
    assert (pruned(X) - src(X)).abs().max() <= 1e-5

    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    model = _source()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = sensitivity(model, compute_scores(model, "l1"), batches, batches[:1], rates=(0.5, 0.9), progress=False,
                        groups={"model.0", "model.9.conv"})
    assert list(table["group"]) == ["model.0", "model.0", "model.9.conv", "model.9.conv"]
    assert list(table["width"]) == [8, 8, 640, 128] and 0 <= table["base_top1"].iloc[0] <= 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model is restored


@pytest.mark.slow
def test_train_with_target_flops_end_to_end(tmp_path):
    import classify.train as train

    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    base = train.run(cfg=CFG, data=str(data), imgsz=32, batch_size=16, workers=0, device="cpu", epochs=1,
                     project=str(tmp_path), name="base")
    result = train.run(weights=str(base["best"]), data=str(data), imgsz=32, batch_size=16, workers=0, device="cpu",
                       epochs=1, project=str(tmp_path), name="pruned", target_flops=0.4, criterion="l1")
    ckpt = torch.load(result["best"], weights_only=True)
    model = attempt_load(result["best"])
    assert ckpt["yaml"]["widths"] and model.model[9].conv.conv.out_channels == ckpt["yaml"]["widths"]["model.9.conv"]
    costs = CostModel(ckpt["yaml"], 32, nc=10)
    assert 0.95 * 0.4 <= costs.fraction(ckpt["yaml"]["widths"], "flops") <= 0.4


@pytest.mark.subprocess
@pytest.mark.slow
def test_cli_rejects_target_with_rate_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "classify" / "train.py"), "--cfg", CFG, "--rate", "0.5",
                          "--target-flops", "0.3"], capture_output=True, text=True, cwd=tmp_path)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("train.py: error:") and "not both" in last
    assert "Traceback" not in out.stderr


@pytest.fixture
def flush_denormal():
    """Random weights: activations fade into denormal floats, which CPUs process very slowly. Flushing them is a
    per-thread CPU flag, so the test runs on one intra-op thread, where it holds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_prune_and_rank_with_a_target_end_to_end(tmp_path, monkeypatch, flush_denormal):
    """classify/prune.py --target-flops: sensitivity on the baseline, plan.yaml, a pruned best.pt that carries the
    plan; classify/rank.py --target-params writes the plan as a model YAML that train.py --cfg rebuilds."""
    import yaml

    from classify import prune as pipeline
    from classify import rank

    measure = pipeline.group_sensitivity  # one rate and one calibration batch keep the test fast
    monkeypatch.setattr(pipeline, "group_sensitivity",
                        lambda *a, **k: measure(*a, **{**k, "rates": (0.5,), "calib_batches": 1, "images": 16}))
    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    weights = save_checkpoint(checkpoint_dict(lively(ClassificationModel(CFG, nc=10))), tmp_path / "w.pt")
    out = pipeline.run(weights=str(weights), data=str(data), target_flops=0.5, criterion="l1", finetune_epochs=1,
                       batch_size=16, imgsz=32, device="cpu", workers=0, project=tmp_path / "runs", name="exp")
    save_dir = out["save_dir"]
    assert (save_dir / "sensitivity.csv").is_file() and (save_dir / "sensitivity.png").is_file()
    plan = yaml.safe_load((save_dir / "plan.yaml").read_text())["widths"]
    ckpt = torch.load(out["pruned"], weights_only=True)
    assert ckpt["yaml"]["widths"] == plan and 0.475 <= CostModel(CFG, 32, nc=10).fraction(plan, "flops") <= 0.5
    assert attempt_load(out["pruned"])(X).shape == (2, 10)

    scores = rank.run(weights=weights, data=data, criterion="l1", imgsz=32, workers=0, output=tmp_path / "s.pt",
                      target_params=0.4)
    cfg = yaml.safe_load((tmp_path / "s.yaml").read_text())
    model = load_model(ClassificationModel(cfg, nc=10), weights, load_scores(scores)[0])
    assert 0.38 <= CostModel(CFG, 32, nc=10).fraction(cfg["widths"], "params") <= 0.4
    assert {g.name: g.channels for g in channel_groups(model)} == cfg["widths"]
