"""Pruning engine: channel groups, scores, top-k selection and exact weight mapping."""

import pytest
import torch

from helpers import silence_pruned_filters, upstream_transforms
from models.criteria import CRITERIA, average_rank, compute_scores
from models.prune import channel_groups, is_pruned, load_model, needs_scores, select_channels
from models.yolo import ClassificationModel, DetectionModel

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _randomise_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so a wrong index shows up in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.rand(n, generator=g) - 0.5
            m.running_mean = torch.rand(n, generator=g) - 0.5
            m.running_var = torch.rand(n, generator=g) + 0.5
    return model


def _source(nc=10, cfg="yolov5n-cls.yaml"):
    torch.manual_seed(0)
    return _randomise_bn(ClassificationModel(cfg, nc=nc)).eval()


def test_groups_tie_the_residual_stream():
    groups = {g.name: g.members for g in channel_groups(ClassificationModel("yolov5n-cls.yaml"))}
    assert groups["model.4.stream"] == ["model.4.cv1", "model.4.m.0.cv2", "model.4.m.1.cv2"]
    assert groups["model.4.cv2"] == ["model.4.cv2"] and groups["model.4.m.1.cv1"] == ["model.4.m.1.cv1"]
    assert groups["model.0"] == ["model.0"] and groups["model.9.conv"] == ["model.9.conv"]
    assert len(groups) == 25  # 4 Conv + (2+1+2+3+1 bottlenecks) m.cv1 + 4×(stream, cv2, cv3) + head


def test_rate_zero_reproduces_classifier_source():
    src = _source()
    model = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10), src)
    assert not needs_scores(model)
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5


def test_is_pruned_compares_with_the_unpruned_architecture():
    assert not is_pruned(ClassificationModel("yolov5n-cls.yaml")) and not is_pruned(torch.nn.Linear(2, 2))
    assert is_pruned(ClassificationModel("yolov5n-cls.yaml", rate=0.5))
    assert is_pruned(ClassificationModel("yolov5n-cls.yaml", widths={"model.9.conv": 640}))
    assert not is_pruned(ClassificationModel("yolov5n-cls.yaml", widths={"model.9.conv": 1280}))  # cuts nothing
    tiny = ClassificationModel("yolov5n-cls.yaml", rate="[0.01]+[0.]*9")  # rounds to layer 0's 16: a request still
    assert tiny.model[0].group_widths["model.0"] == (16, 16) and is_pruned(tiny) and needs_scores(tiny)


def test_rate_zero_detector_source_gives_identical_backbone_features():
    torch.manual_seed(0)
    det = _randomise_bn(DetectionModel("yolov5n.yaml")).eval()
    model = load_model(ClassificationModel("yolov5n-cls.yaml", nc=3), det).eval()
    a = b = X
    for i in range(9):
        a, b = model.model[i](a), det.model[i](b)
    assert torch.equal(a, b)
    assert model(X).shape == (2, 3)


def test_kept_filters_are_the_top_k_source_filters():
    src = _source()
    scores = compute_scores(src, "random", seed=3)
    model = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate="[0.25]+[0.5]*8+[0.3]"), src, scores)
    s_sd, t_sd = src.state_dict(), model.state_dict()
    kept = {g.name: select_channels(scores[g.name], g.channels) for g in channel_groups(model)}
    for g in channel_groups(model):
        idx = kept[g.name]
        top = set(torch.topk(scores[g.name], g.channels).indices.tolist())
        assert set(idx.tolist()) == top and torch.equal(idx, idx.sort().values)
        for name in g.members:
            for t in ("weight", "bias", "running_mean", "running_var"):
                assert torch.equal(t_sd[f"{name}.bn.{t}"], s_sd[f"{name}.bn.{t}"][idx])
            # Each kept filter is the source filter at the selected index (its input side is checked below).
            assert t_sd[f"{name}.conv.weight"].shape[0] == len(idx)
    # Input side: layer 1 reads layer 0's kept channels; the head's linear reads the head conv's.
    assert torch.equal(t_sd["model.1.conv.weight"], s_sd["model.1.conv.weight"][kept["model.1"]][:, kept["model.0"]])
    assert torch.equal(t_sd["model.9.linear.weight"], s_sd["model.9.linear.weight"][:, kept["model.9.conv"]])
    assert torch.equal(t_sd["model.9.linear.bias"], s_sd["model.9.linear.bias"])
    assert model.eval()(X).shape == (2, 10)


def test_c3_residual_stream_keeps_one_index_set_by_hand():
    """yolov5n layer 2: C3(32, 32, n=1) with hidden width 16; prune it by half with hand-picked scores."""
    src = _source()
    scores = compute_scores(src, "l1")
    stream = torch.zeros(16)
    stream[[1, 4, 6, 7, 9, 10, 13, 15]] = 1.0  # keep exactly these 8 stream channels
    scores["model.2.stream"] = stream
    cv2 = torch.arange(16.0)  # keep the 8 highest: 8..15
    scores["model.2.cv2"] = cv2
    rate = [0.0, 0.0, 0.5] + [0.0] * 7
    model = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=rate), src, scores)
    s, t = src.model[2], model.model[2]
    keep = torch.tensor([1, 4, 6, 7, 9, 10, 13, 15])
    hid = select_channels(scores["model.2.m.0.cv1"], 8)
    side = torch.arange(8, 16)
    assert torch.equal(t.cv1.conv.weight, s.cv1.conv.weight[keep])  # stream producer 1
    assert torch.equal(t.m[0].cv1.conv.weight, s.m[0].cv1.conv.weight[hid][:, keep])  # reads the stream
    assert torch.equal(t.m[0].cv2.conv.weight, s.m[0].cv2.conv.weight[keep][:, hid])  # stream producer 2
    out = select_channels(scores["model.2.cv3"], 16)
    assert torch.equal(t.cv3.conv.weight, s.cv3.conv.weight[out][:, torch.cat([keep, 16 + side])])  # cat(stream, cv2)
    assert torch.equal(model.model[3].conv.weight, src.model[3].conv.weight[:, out])  # next layer reads cv3's kept


@pytest.mark.parametrize("rate", ["[0.5]*10", "[0.]+[0.3]*4+[0.5]*5", "[0.]*2+[0.75]+[0.]*7"])
def test_pruning_dead_filters_changes_nothing(rate):
    """Silence exactly the filters pruning will drop; the pruned model must then equal the source.

    This checks every index mapping at once: residual adds, the C3 concat, layer to layer and conv → linear.
    """
    src = _source()
    model = ClassificationModel("yolov5n-cls.yaml", nc=10, rate=rate)
    load_model(model, src, silence_pruned_filters(src, model, seed=1))
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5


def test_ties_keep_the_lower_index():
    assert select_channels(torch.tensor([1.0, 2.0, 2.0, 1.0, 2.0]), 2).tolist() == [1, 2]
    assert select_channels(torch.zeros(6), 3).tolist() == [0, 1, 2]


def test_other_architecture_is_refused():
    with pytest.raises(ValueError, match="do not match.*model.0.conv.weight"):
        load_model(ClassificationModel("yolov5s-cls.yaml", nc=10), _source())


def test_pruned_without_scores_is_refused():
    with pytest.raises(ValueError, match="no scores"):
        load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5), _source())


def test_other_nc_keeps_head_initialisation(caplog):
    src = _source(nc=1000)
    torch.manual_seed(5)
    model = ClassificationModel("yolov5n-cls.yaml", nc=4)
    init = model.model[9].linear.weight.clone()
    load_model(model, src)
    assert torch.equal(model.model[9].linear.weight, init)
    assert torch.equal(model.model[9].conv.conv.weight, src.model[9].conv.conv.weight)


def test_scores_are_deterministic_and_sized():
    src = _source()
    loader = [(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(b)), None) for b in range(3)]
    for criterion in CRITERIA:
        a = compute_scores(src, criterion, loader, batches=2)
        b = compute_scores(src, criterion, loader, batches=2)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert all(len(a[g.name]) == g.channels for g in channel_groups(src))
    assert compute_scores(src, "random", seed=1)["model.0"].tolist() != compute_scores(src, "random", seed=2)["model.0"].tolist()
    with pytest.raises(ValueError, match="needs data"):
        compute_scores(src, "hrank")


def test_hrank_returns_known_rank():
    g = torch.Generator().manual_seed(0)
    ranks = [1, 3, 5, 8]
    maps = torch.stack([torch.stack([torch.randn(12, r, generator=g) @ torch.randn(r, 10, generator=g)
                                     for r in ranks]) for _ in range(3)])  # (N=3, C=4, 12, 10)
    assert (average_rank(maps) / 3).tolist() == [float(r) for r in ranks]
    loop = torch.tensor([[torch.linalg.matrix_rank(maps[n, c]).item() for c in range(4)] for n in range(3)])
    assert torch.equal(average_rank(maps), loop.sum(0).double())  # batched == HRank's per-map loop


def test_recalibrate_bn_fits_statistics_to_the_data():
    from models.criteria import recalibrate_bn

    model = _source()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    images = [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(b)) for b in range(2)]
    recalibrate_bn(model, [(x, None) for x in images], batches=2)
    conv_out = torch.cat([model.model[0].conv(x) for x in images])
    assert torch.allclose(model.model[0].bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    assert not model.training and model.model[0].bn.momentum == 0.03  # momentum restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # weights untouched


def test_a_pruned_source_is_pruned_further_from_its_own_widths():
    src = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.25), _source(),
                     compute_scores(_source(), "l1"))  # a pruned checkpoint's model, with its YAML
    scores = compute_scores(src, "l1")
    assert len(scores["model.9.conv"]) == 960  # ranked at the source's own (pruned) widths
    same = load_model(ClassificationModel(src.yaml, nc=10), src)  # same rates: copied as is
    assert (same.eval()(X) - src.eval()(X)).abs().max() <= 1e-5
    further = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5), src, scores)
    kept = select_channels(scores["model.0"], 8)
    assert torch.equal(further.model[0].conv.weight, src.model[0].conv.weight[kept])
    with pytest.raises(ValueError, match="pruned more than the model"):
        load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.0), src)


def test_dead_filters_through_sppf_and_a_top_level_bottleneck():
    """Layouts the shipped YAMLs do not use: SPPF's 4-way concat, and a residual Bottleneck as its own layer."""
    from models.yolo import classifier_yaml

    sppf = classifier_yaml("yolov5n.yaml", cutoff=11)  # layers 0-9 (SPPF at 9) + Classify
    chain = {"nc": 5, "depth_multiple": 1.0, "width_multiple": 1.0, "head": [[-1, 1, "Classify", ["nc"]]],
             "backbone": [[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Bottleneck", [32]], [-1, 1, "Conv", [64, 3, 2]]]}
    for cfg, rate in ((sppf, [0.0] * 8 + [0.5, 0.5, 0.25]), (chain, [0.5, 0.25, 0.5, 0.0])):
        torch.manual_seed(0)
        src = _randomise_bn(ClassificationModel(cfg)).eval()
        model = ClassificationModel(cfg, rate=rate)
        load_model(model, src, silence_pruned_filters(src, model, seed=2))
        assert (model.eval()(X) - src(X)).abs().max() <= 1e-5


def test_rate_zero_reproduces_an_upstream_classifier_checkpoint(tmp_path):
    """Upstream cuts a detector and adds the Classify head after its BatchNorm settings were applied, so the head's
    BatchNorm keeps torch's eps 1e-5: our YAML-built model must match it, or rate 0 is not the same function."""
    from models.experimental import attempt_load

    torch.manual_seed(0)
    upstream = ClassificationModel(model=DetectionModel("yolov5n.yaml"), nc=10, cutoff=10)  # upstream's own recipe
    _randomise_bn(upstream, seed=3)
    for bn in upstream.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_var.mul_(0.01)  # small variances: where eps matters
    assert upstream.model[9].conv.bn.eps == 1e-5 and upstream.model[8].cv1.bn.eps == 1e-3
    upstream.transforms = upstream_transforms(64)
    del upstream.yaml
    torch.save({"model": upstream.half(), "ema": None, "epoch": -1, "optimizer": None}, tmp_path / "up.pt")

    ours = ClassificationModel("yolov5n-cls.yaml", nc=10)
    for (name, a), b in zip(ours.named_modules(), upstream.modules()):  # every module configured as upstream's
        if isinstance(a, torch.nn.BatchNorm2d):
            assert (a.eps, a.momentum) == (b.eps, b.momentum), name
    load_model(ours, tmp_path / "up.pt")
    reference = attempt_load(tmp_path / "up.pt")
    assert (ours.eval()(X) - reference(X)).abs().max() <= 1e-5


def _v5_0_yaml():
    """A YOLOv5 v5.0 detector YAML (Focus stem, SPP before the last C3), in yolov5n's widths."""
    from models.yolo import load_yaml

    d = load_yaml("yolov5n.yaml")
    d["backbone"][0] = [-1, 1, "Focus", [64, 3]]
    d["backbone"][8] = [-1, 1, "SPP", [1024, [5, 9, 13]]]
    d["backbone"][9] = [-1, 3, "C3", [1024, False]]
    return d


def test_yolov5_v5_0_detector_checkpoint_gives_identical_backbone_features(tmp_path):
    from models.experimental import attempt_load
    from models.yolo import cfg_of
    from models.yolo import classifier_yaml

    torch.manual_seed(0)
    det = _randomise_bn(DetectionModel(_v5_0_yaml())).eval()
    torch.save({"model": det.half(), "epoch": -1}, tmp_path / "yolov5n-v5.pt")  # whole pickled modules, as v5.0
    source = attempt_load(tmp_path / "yolov5n-v5.pt")  # Focus and SPP are allowlisted
    model = load_model(ClassificationModel(classifier_yaml(cfg_of(source)), nc=3), source).eval()
    assert [type(m).__name__ for m in model.model][::8] == ["Focus", "SPP"]
    a = b = X
    for i in range(9):
        a, b = model.model[i](a), source.model[i](b)
    assert torch.equal(a, b)


def test_dead_filters_through_focus_and_spp():
    from models.yolo import classifier_yaml

    cfg = classifier_yaml(_v5_0_yaml())
    torch.manual_seed(0)
    src = _randomise_bn(ClassificationModel(cfg)).eval()
    model = ClassificationModel(cfg, rate=[0.5] + [0.0] * 7 + [0.5, 0.25])
    assert model.model[0].conv.conv.out_channels == 8 and model.model[8].cv1.conv.out_channels == 64
    load_model(model, src, silence_pruned_filters(src, model, seed=2))
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5


def _chain(*rows):
    return {"nc": 5, "depth_multiple": 1.0, "width_multiple": 1.0, "backbone": [list(r) for r in rows],
            "head": [[-1, 1, "Classify", ["nc"]]]}


def test_grouped_convs_map_unpruned_and_refuse_pruning_in_one_line():
    cfg = _chain([-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [32, 3, 1, None, 32]], [-1, 1, "Conv", [64, 3, 2]])
    torch.manual_seed(0)
    src = _randomise_bn(ClassificationModel(cfg)).eval()
    assert src.model[1].conv.groups == 32  # depthwise
    assert (load_model(ClassificationModel(cfg), src).eval()(X) - src(X)).abs().max() <= 1e-5
    model = ClassificationModel(cfg, rate=[0.0, 0.0, 0.5, 0.5])  # layers after it may be pruned
    load_model(model, src, silence_pruned_filters(src, model, seed=0))
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5
    for rate in ([0.0, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]):  # itself, or what feeds it
        with pytest.raises(ValueError, match=r"^layer 1 \(Conv\) has a grouped convolution \(g=32\)[^\n]*$"):
            ClassificationModel(cfg, rate=rate)


def test_dead_filters_through_a_residual_bottleneck_over_a_concat():
    """Bottleneck(cat(layer 1, layer 0)) with its shortcut: its cv2 output keeps the concat's channel indices."""
    cfg = _chain([-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 1]], [[-1, 0], 1, "Concat", [1]],
                 [-1, 1, "Bottleneck", [32]], [-1, 1, "Conv", [64, 3, 2]])
    torch.manual_seed(0)
    src = _randomise_bn(ClassificationModel(cfg)).eval()
    model = ClassificationModel(cfg, rate=[0.5, 0.5, 0.0, 0.5, 0.5, 0.0])
    scores = silence_pruned_filters(src, model, seed=3)
    dropped = torch.cat([scores["model.1"] == 0, scores["model.0"] == 0])  # concat order: layer 1, then layer 0
    src.model[3].cv2.bn.weight.data[dropped] = 0  # the residual branch adds nothing where the concat is dropped
    src.model[3].cv2.bn.bias.data[dropped] = 0
    load_model(model, src, scores)
    assert model.model[3].cv2.conv.out_channels == 16
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5


def test_fused_source_maps_like_the_unfused_one():
    from copy import deepcopy

    src = _source()
    fused = deepcopy(src).fuse()
    assert not hasattr(fused.model[0], "bn")
    model = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10), fused)
    assert (model.eval()(X) - src(X)).abs().max() <= 1e-5
    scores = compute_scores(src, "l1")
    a = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5), src, scores).eval()
    b = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5), fused, scores).eval()
    assert (a(X) - b(X)).abs().max() <= 1e-5
