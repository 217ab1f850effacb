"""models/sparsity.py and classify/train.py --sparsity: the group lasso by hand, tied members shrink together."""

import pytest
import torch

import classify.train as train
from models.graph import channel_groups
from models.sparsity import GroupLasso
from models.yolo import ClassificationModel


@pytest.mark.parametrize("cfg", ["yolov5n-cls.yaml", "yolo11n-cls.yaml"])
def test_penalty_by_hand(cfg):
    torch.manual_seed(0)
    model = ClassificationModel(cfg, nc=4)
    modules = dict(model.named_modules())
    for m in model.modules():  # random scales, some negative: the penalty is of magnitudes
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(-1, 1)
    expected = 0.0
    groups = [g for g in channel_groups(model) if not g.fixed]
    assert any(len(g.members) > 1 for g in groups)  # residual streams: tied members
    for g in groups:
        squares = sum(modules[m].bn.weight.detach()[g.span(m)].double() ** 2 for m in g.members)
        expected += squares.sqrt().sum().item()
    assert GroupLasso(model, 0.01)().item() == pytest.approx(0.01 * expected, rel=1e-5)


def test_gradient_shrinks_a_tied_channel_as_a_whole():
    model = ClassificationModel("yolov5n-cls.yaml", nc=4)
    modules = dict(model.named_modules())
    stream = next(g for g in channel_groups(model) if len(g.members) > 1)
    a, b = (modules[m].bn.weight for m in stream.members[:2])
    with torch.no_grad():
        a[0], b[0] = 3.0, 4.0  # channel 0 of the stream: norm 5 over these two members
        for m in stream.members[2:]:
            modules[m].bn.weight[0] = 0.0
        a[1] = b[1] = 0.0  # a channel already at zero: a finite gradient
        for m in stream.members[2:]:
            modules[m].bn.weight[1] = 0.0
    GroupLasso(model, 1.0)().backward()
    assert a.grad[0].item() == pytest.approx(3 / 5) and b.grad[0].item() == pytest.approx(4 / 5)
    assert torch.isfinite(a.grad).all() and a.grad[1].abs().item() < 1e-3


@pytest.mark.slow
def test_sparsity_training_shrinks_batchnorm_scales(data, tmp_path):
    common = dict(data=str(data), cfg="yolov5n-cls.yaml", imgsz=32, batch_size=16, workers=0, device="cpu", seed=0,
                  epochs=2, project=str(tmp_path), lr0=0.01)
    runs = {s: train.run(name=f"sp{s}", sparsity=s, **common) for s in (0.0, 1.0)}

    def scales(run):
        ckpt = torch.load(run["last"], weights_only=True)
        return sum(v.abs().sum().item() for k, v in ckpt["model"].items() if k.endswith("bn.weight"))

    assert torch.load(runs[1.0]["last"], weights_only=True)["opt"]["sparsity"] == 1.0
    assert scales(runs[1.0]) < 0.96 * scales(runs[0.0])  # Adam moves each scale about lr a step
