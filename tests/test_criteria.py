"""Ranking criteria: the registry, HRank's order with tie-breaking, the continuous and gradient criteria."""

import pytest
import torch
import torch.nn.functional as F

from models.criteria import (CRITERIA, Criterion, compute_scores, get_criterion, matrix_ranks, register,
                             scoring_points, singular_values)
from models.prune import channel_groups, load_model
from models.ranking import tied_fraction
from models.yolo import ClassificationModel

from helpers import lively


def _model(nc=10, seed=0):
    torch.manual_seed(seed)
    return lively(ClassificationModel("yolov5n-cls.yaml", nc=nc), seed).eval()


def _loader(n_batches=2, batch=8, imgsz=32, nc=10):
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(batch, 3, imgsz, imgsz, generator=g), torch.randint(0, nc, (batch,), generator=g))
            for _ in range(n_batches)]


def test_registry_declares_needs_and_builds_the_cli_choices():
    assert {"hrank", "nuclear", "taylor", "l1", "bn", "random"} <= set(CRITERIA)
    needs = {k: (c.needs_data, c.needs_grad) for k, c in CRITERIA.items()}
    assert needs["hrank"] == needs["nuclear"] == (True, False) and needs["taylor"] == (True, True)
    assert needs["l1"] == needs["bn"] == needs["random"] == (False, False)
    assert all(c.help for c in CRITERIA.values())
    with pytest.raises(ValueError, match="must be one of .*hrank.*not 'rankh'"):
        get_criterion("rankh")
    from classify import prune, rank, train

    assert rank.CRITERIA is train.CRITERIA is prune.CRITERIA is CRITERIA  # --criterion choices are the registry


def test_adding_a_criterion_is_one_class():
    @register
    class FirstWeight(Criterion):
        name, help = "first-weight", "test only"

        def point_scores(self, model, points, dataloader=None, batches=5, device=None):
            return {n: m.conv.weight.detach().flatten(1)[:, 0].double() for n, m in points.items()}

    try:
        model = _model()
        scores = compute_scores(model, "first-weight")
        assert torch.equal(scores["model.0"], model.model[0].conv.weight.detach().flatten(1)[:, 0].double())
        stream = ["model.2.cv1", "model.2.m.0.cv2"]
        expect = torch.stack([model.get_submodule(n).conv.weight.detach().flatten(1)[:, 0].double() for n in stream])
        assert torch.allclose(scores["model.2.stream"], expect.mean(0))  # default reduction: mean over members
    finally:
        del CRITERIA["first-weight"]


def test_singular_value_ranks_equal_matrix_rank():
    g = torch.Generator().manual_seed(0)
    maps = torch.stack([torch.randn(12, r, generator=g) @ torch.randn(r, 10, generator=g) for r in (1, 3, 5, 8)])
    maps = torch.cat([maps, torch.zeros(1, 12, 10)])[None].repeat(3, 1, 1, 1)  # (3, 5, 12, 10), a dead map too
    ranks = matrix_ranks(singular_values(maps), maps.shape)
    assert torch.equal(ranks, torch.linalg.matrix_rank(maps)) and ranks[0].tolist() == [1, 3, 5, 8, 0]


class _Probe(torch.nn.Module):
    """Stands in for a network: each child returns fixed (N, C, H, W) maps, so their ranks are known."""

    def __init__(self, maps):
        super().__init__()
        self.points = torch.nn.ModuleList(torch.nn.Identity() for _ in maps)
        self.maps = maps
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return sum(p(m + self.w).mean() for p, m in zip(self.points, self.maps))


def test_hrank_keeps_the_paper_order_and_breaks_its_ties():
    g = torch.Generator().manual_seed(0)
    n, c, size = 4, 40, 8
    ranks = torch.randint(0, 4, (3, n, c), generator=g)  # 3 points (a residual group) x 4 images x 40 channels
    maps = torch.zeros(3, n, c, size, size)
    for idx in torch.cartesian_prod(torch.arange(3), torch.arange(n), torch.arange(c)).tolist():
        r = int(ranks[tuple(idx)])
        maps[tuple(idx)] = torch.randn(size, r, generator=g) @ torch.randn(r, size, generator=g) * torch.rand(1, generator=g)
    probe = _Probe(list(maps))
    hrank = get_criterion("hrank")
    points = {f"points.{k}": probe.points[k] for k in range(3)}
    per_point = hrank.point_scores(probe, points, [(torch.zeros(n, 1), None)], batches=1)
    for k in range(3):  # a single point: the paper's average rank wherever it differs
        avg = torch.linalg.matrix_rank(maps[k]).double().mean(0)
        s = hrank.reduce([per_point[f"points.{k}"]])
        differ = avg[:, None] > avg[None, :]
        assert differ.sum() > 100 and bool((s[:, None] > s[None, :])[differ].all())
        assert tied_fraction(avg) > 0.5 and tied_fraction(s) == 0  # HRank alone ties most; the tie-breaker none
    group = hrank.reduce(list(per_point.values()))  # a residual group: mean rank over its 3 points
    avg = torch.linalg.matrix_rank(maps).double().mean((0, 1))
    differ = avg[:, None] > avg[None, :]
    assert differ.sum() > 100 and bool((group[:, None] > group[None, :])[differ].all())
    assert torch.allclose(group, avg, atol=0.5 / (n * 3))  # the tie-breaker moves a score by under half a step


def test_hrank_ties_at_most_5_percent_of_a_yolov5n_at_32px():
    model, loader = _model(), _loader()
    scores = compute_scores(model, "hrank", loader, batches=2)
    ties = sum(tied_fraction(s) * len(s) for s in scores.values()) / sum(len(s) for s in scores.values())
    assert ties <= 0.05


def test_nuclear_is_the_mean_nuclear_norm():
    model, loader = _model(), _loader()
    scores = compute_scores(model, "nuclear", loader, batches=2)
    with torch.no_grad():
        out = torch.cat([model.model[0](x) for x, _ in loader])
    expect = torch.linalg.matrix_norm(out, ord="nuc").mean(0).double()
    assert torch.allclose(scores["model.0"], expect, rtol=1e-4)


def test_taylor_is_activation_times_gradient_and_leaves_the_model_alone():
    model, loader = _model(), _loader(n_batches=1)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    scores = compute_scores(model, "taylor", loader, batches=1)
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in params.items())
    # independent computation for the head's conv: d(summed CE)/d(activation) by autograd
    x, y = loader[0]
    kept = {}
    h = model.model[9].conv.register_forward_hook(lambda m, i, o: kept.setdefault("a", o))
    loss = F.cross_entropy(model(x), y, reduction="sum")
    h.remove()
    (g,) = torch.autograd.grad(loss, kept["a"])
    expect = (kept["a"] * g).sum((2, 3)).abs().mean(0).double()
    assert torch.allclose(scores["model.9.conv"], expect, rtol=1e-4, atol=1e-9)
    assert tied_fraction(scores["model.9.conv"]) == 0


def test_taylor_uses_own_predictions_when_the_data_has_other_classes(logs):
    model = _model(nc=1000)
    loader = [(x, y + 2000) for x, y in _loader(n_batches=1)]  # labels outside the model's classes
    scores = compute_scores(model, "taylor", loader, batches=1)
    assert all(torch.isfinite(s).all() for s in scores.values())
    assert any("own top-1 predictions" in r.getMessage() for r in logs.records)


def test_residual_streams_scored_before_or_after_the_add():
    model, loader = _model(), _loader(n_batches=1)
    groups = channel_groups(model)
    members = scoring_points(groups, "members", needs_data=True)
    added = scoring_points(groups, "added", needs_data=True)
    assert members["model.4.stream"] == ["model.4.cv1", "model.4.m.0.cv2", "model.4.m.1.cv2"]
    assert added["model.4.stream"] == ["model.4.cv1", "model.4.m.0", "model.4.m.1"]  # the maps after each add
    assert added["model.0"] == ["model.0"] and scoring_points(groups, "added")["model.4.stream"][1] == "model.4.m.0.cv2"
    a = compute_scores(model, "nuclear", loader, batches=1, residual="members")
    b = compute_scores(model, "nuclear", loader, batches=1, residual="added")
    assert torch.equal(a["model.0"], b["model.0"]) and not torch.equal(a["model.4.stream"], b["model.4.stream"])
    with torch.no_grad():
        x = model.model[3](model.model[2](model.model[1](model.model[0](loader[0][0]))))
        c3 = model.model[4]
        s0 = c3.cv1(x)
        s1 = c3.m[0](s0)
        s2 = c3.m[1](s1)
    expect = torch.stack([torch.linalg.matrix_norm(t, ord="nuc").mean(0) for t in (s0, s1, s2)]).mean(0).double()
    assert torch.allclose(b["model.4.stream"], expect, rtol=1e-4)
    with pytest.raises(ValueError, match="residual must be one of"):
        compute_scores(model, "nuclear", loader, residual="after")


@pytest.mark.parametrize("criterion", ["hrank", "nuclear", "taylor"])
def test_data_criteria_prune_a_model_that_runs(criterion):
    model, loader = _model(), _loader(n_batches=1)
    scores = compute_scores(model, criterion, loader, batches=1)
    pruned = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5), model, scores)
    assert pruned.eval()(loader[0][0]).shape == (8, 10)


def test_fpgm_ranks_the_filter_nearest_the_others_lowest():
    model = _model()
    conv = model.model[0].conv
    with torch.no_grad():  # filter 3 = the mean of the others: the redundant one FPGM prunes first
        others = torch.cat([conv.weight[:3], conv.weight[4:]])
        conv.weight[3] = others.mean(0)
    scores = compute_scores(model, "fpgm")["model.0"]
    w = conv.weight.detach().flatten(1).double()
    expected = torch.stack([(w - w[i]).norm(dim=1).sum() for i in range(len(w))])
    assert torch.allclose(scores, expected) and int(scores.argmin()) == 3
