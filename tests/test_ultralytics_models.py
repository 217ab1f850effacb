"""ultralytics' YOLOv8/YOLO11/YOLO26 classifiers built by this project: the same layers as the installed ultralytics
package (its own ClassificationModel is the reference), pruned by the same channel-group rules as YOLOv5's."""

import pytest
import torch
from helpers import lively

from data.builtin import make_builtin_dataset
from models.allocation import allocate
from models.costs import CostModel
from utils.model_info import count_flops
from models.criteria import CRITERIA, compute_scores
from models.prune import channel_groups, load_model, select_channels
from models.sensitivity import silence
from models.yolo import ClassificationModel, classifier_yaml

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
SMALL = ["yolov8n-cls.yaml", "yolo11n-cls.yaml", "yolo26n-cls.yaml"]


def ultralytics_model(cfg, nc=10):
    from ultralytics.nn.tasks import ClassificationModel as UltralyticsClassifier

    return UltralyticsClassifier(cfg, nc=nc, verbose=False)


@pytest.mark.parametrize("cfg", [*SMALL, "yolo11m-cls.yaml"])  # m: C3k inner blocks (ultralytics' m/l/x rule)
def test_same_layers_and_outputs_as_ultralytics(cfg):
    reference = lively(ultralytics_model(cfg)).eval()
    ours = ClassificationModel(cfg, nc=10).eval()
    theirs = reference.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    assert all(v.shape == theirs[k].shape for k, v in ours.state_dict().items())
    ours.load_state_dict(theirs)
    with torch.no_grad():
        probabilities, logits = reference(X)  # ultralytics' Classify gives (softmax, logits) in eval
        mine = ours(X)  # this project's gives logits, as YOLOv5's does
    assert torch.equal(mine, logits) and torch.allclose(mine.softmax(1), probabilities, atol=1e-6)


def _lively_source(cfg):
    return lively(ClassificationModel(cfg, nc=10)).eval()


YOLO26_TO_SPPF = classifier_yaml("yolo26n.yaml", cutoff=11)  # a detector's backbone through YOLO26's residual SPPF


@pytest.mark.parametrize("cfg", ["yolov8n-cls.yaml", "yolo11n-cls.yaml", "yolo11m-cls.yaml", YOLO26_TO_SPPF],
                         ids=["yolov8n", "yolo11n", "yolo11m", "yolo26n-to-sppf"])
def test_pruned_model_equals_the_source_with_dead_filters(cfg):
    """Pruning at rate 0.5 = the unpruned model with the dropped filters' BatchNorm zeroed (SiLU(0) = 0): every
    kernel, split half, residual stream and concat input was mapped to the right channels."""
    source = _lively_source(cfg)
    scores = compute_scores(source, "l1")
    pruned = load_model(ClassificationModel(cfg, nc=10, rate=0.5), source, scores).eval()
    kept = {g.name: g.channels for g in channel_groups(pruned)}
    for g in (g for g in channel_groups(source) if not g.fixed):
        dropped = torch.ones(g.channels, dtype=torch.bool)
        dropped[select_channels(scores[g.name], kept[g.name])] = False
        silence(source, g, dropped)
    with torch.no_grad():
        assert (pruned(X) - source(X)).abs().max() <= 1e-5
    params = [sum(p.numel() for p in m.parameters()) for m in (pruned, source)]
    assert params[0] < 0.5 * params[1]


def test_residual_sppf_of_yolo26_matches_ultralytics():
    """YOLO26's SPPF (n pools, shortcut, unactivated cv1) as ultralytics builds it: same outputs; pruned, its cv2
    joins its input's group."""
    from ultralytics.nn.tasks import DetectionModel as UltralyticsDetector

    reference = lively(UltralyticsDetector("yolo26n.yaml", verbose=False)).eval()
    ours = ClassificationModel(YOLO26_TO_SPPF, nc=10).eval()
    state = ours.state_dict()
    ours.load_state_dict({**state, **{k: v for k, v in reference.state_dict().items() if k in state and ".10." not in k}})
    y, z = X, X
    with torch.no_grad():
        for theirs, mine in zip(reference.model[:10], ours.model[:10]):
            y, z = theirs(y), mine(z)
    assert ours.model[9].add and torch.equal(y, z)
    groups = {g.name: g for g in channel_groups(ours)}
    assert "model.9.cv2" in groups["model.8.cv2"].members and "model.9.cv2" not in groups


def test_groups_of_a_c3k2_and_a_c2psa():
    groups = {g.name: g for g in channel_groups(ClassificationModel("yolo11n-cls.yaml", nc=10))}
    stream = groups["model.2.stream"]  # cv1's second half, then each Bottleneck's add
    assert stream.members == ["model.2.cv1", "model.2.m.0.cv2"] and stream.slices == {"model.2.cv1": (16, 32)}
    assert groups["model.2.cv1.a"].slices == {"model.2.cv1": (0, 16)} and groups["model.2.m.0.cv1"].channels == 8
    assert groups["model.9.stream"].fixed and groups["model.9.m.0.attn.qkv"].fixed  # attention keeps its heads
    assert not groups["model.9.m.0.ffn.0"].fixed and groups["model.9.m.0.ffn.0"].channels == 256
    pruned = ClassificationModel("yolo11n-cls.yaml", nc=10, rate=0.5)
    assert pruned.model[9].c == 128 and pruned.model[9].m[0].ffn[0].conv.out_channels == 128  # ffn pruned only
    assert pruned.model[2].c == pruned.model[2].cv1.conv.out_channels // 2 == 8


def test_split_halves_keep_equal_widths():
    with pytest.raises(ValueError, match="model.2.cv1.a and model.2.stream are the two halves"):
        ClassificationModel("yolo11n-cls.yaml", nc=10, widths={"model.2.cv1.a": 8})
    costs = CostModel("yolo11n-cls.yaml", 32, nc=10)
    assert ("model.2.cv1.a", "model.2.stream") in costs.units and "model.9.stream" not in costs.full
    plan = allocate(costs, 0.4, "flops")
    for a, b in (u for u in costs.units if len(u) == 2):
        assert plan[a] == plan[b]
    model = ClassificationModel("yolo11n-cls.yaml", nc=10, widths=plan)  # builds: the halves agree
    with torch.device("meta"):
        meta = ClassificationModel("yolo11n-cls.yaml", nc=10, widths=plan)
    assert costs.cost(plan)["flops"] == count_flops(meta.eval(), 32)  # attention products included
    assert costs.cost(plan)["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("residual", ["members", "added"])
def test_every_criterion_scores_every_prunable_group(tmp_path, residual):
    from utils.dataloaders import create_classification_dataloader

    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    loader = create_classification_dataloader(data / "train", imgsz=32, batch_size=4, augment=False, workers=0)
    model = _lively_source("yolo11n-cls.yaml")
    groups = {g.name: g for g in channel_groups(model)}
    for name in CRITERIA:
        scores = compute_scores(model, name, loader, batches=1, residual=residual)
        assert set(scores) == {g for g, group in groups.items() if not group.fixed}
        assert all(len(s) == groups[g].channels and torch.isfinite(s).all() for g, s in scores.items())


def test_scale_letter_and_unknown_names_are_one_line():
    with pytest.raises(ValueError, match="needs a scale letter"):
        ClassificationModel("yolo11-cls.yaml")
    with pytest.raises(FileNotFoundError, match="yolo11n-cls.yaml"):
        ClassificationModel("yolo99n-cls.yaml")


@pytest.mark.slow
def test_prune_pipeline_for_a_budget_and_rank_rate(tmp_path, monkeypatch):
    """classify/prune.py --cfg yolo11n-cls.yaml --target-flops: baseline, ranks, sensitivity, allocated widths (halves
    equal), distilled fine-tunes, summary; then classify/rank.py and train.py --rate on the same baseline."""
    import pandas as pd
    import yaml

    from classify import prune as pipeline
    from classify import rank
    from classify import train
    from models.experimental import attempt_load

    measure = pipeline.group_sensitivity  # one rate and one calibration batch keep the test fast
    monkeypatch.setattr(pipeline, "group_sensitivity",
                        lambda *a, **k: measure(*a, **{**k, "rates": (0.5,), "calib_batches": 1, "images": 16}))
    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    out = pipeline.run(cfg="yolo11n-cls.yaml", data=str(data), target_flops=0.5, criterion="bn", epochs=1,
                       finetune_epochs=1, batch_size=16, imgsz=32, device="cpu", workers=0, project=tmp_path / "runs",
                       name="exp")
    plan = yaml.safe_load((out["save_dir"] / "plan.yaml").read_text())["widths"]
    assert plan["model.4.cv1.a"] == plan["model.4.stream"] and 0.475 <= CostModel(
        "yolo11n-cls.yaml", 32, nc=10).fraction(plan, "flops") <= 0.5
    pruned = attempt_load(out["pruned"])
    assert pruned.model[4].c == plan["model.4.stream"] and pruned(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    table = pd.read_csv(out["save_dir"] / "summary.csv", index_col="model")
    assert table.loc["pruned + 1 epoch", "distilled"] == "yes"
    assert table.loc["pruned + 1 epoch", "parameters"] < table.loc["baseline", "parameters"]
    assert table["parameters"].iloc[-1] == table.loc["pruned + 1 epoch", "parameters"]  # scratch: the same widths
    # one FLOPs count for the plan and the summary: the share the plan was sized to is the share the table reports
    share = table.loc["pruned + 1 epoch", "GFLOPs"] / table.loc["baseline", "GFLOPs"]
    assert share == pytest.approx(CostModel("yolo11n-cls.yaml", 32, nc=10).fraction(plan, "flops"), rel=1e-6)

    scores = rank.run(weights=out["baseline"], data=data, criterion="taylor", imgsz=32, workers=0,
                      output=tmp_path / "s.pt")
    result = train.run(weights=str(out["baseline"]), ranks=str(scores), rate="0.5", data=str(data), imgsz=32,
                       batch_size=16, workers=0, device="cpu", epochs=1, project=str(tmp_path), name="rate")
    model = attempt_load(result["best"])
    assert model.yaml["yaml_file"] == "yolo11n-cls.yaml" and model.model[9].m[0].ffn[0].conv.out_channels == 128


def test_weights_of_another_scale_are_one_line():
    """One ultralytics YAML serves every scale: n weights into an s model name the size mismatch, even when the n
    source was itself pruned by a plan."""
    source = ClassificationModel("yolo11n-cls.yaml", nc=10, rate=0.25)
    with pytest.raises(ValueError, match="another model size"):
        load_model(ClassificationModel("yolo11s-cls.yaml", nc=10, rate=0.5), source, compute_scores(source, "l1"))
