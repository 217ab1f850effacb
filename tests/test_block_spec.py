"""Block specs (models/specs.py): adding a block type is one spec. A block the project does not have (ultralytics'
C1: a 1x1 conv whose output is added to that of n 3x3 convs run on it) is declared here, in this file only, then
built from a YAML, pruned (rates, a widths plan, load_model from a checkpoint, dead-filter equivalence) and exported
(ONNX and an ultralytics checkpoint, through export.py). The registration is undone after each test."""

import os

import pytest
import torch
import torch.nn as nn

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no checks or downloads over the network

from helpers import lively, silence_pruned_filters  # noqa: E402
from models.common import Conv  # noqa: E402
from models.io.checkpoints import _global_name, allowed_globals, checkpoint_dict, save_checkpoint  # noqa: E402
from models.prune import channel_groups, load_model  # noqa: E402
from models.specs import Args, BlockSpec, Handler, register, registered, spec_named, yaml_names  # noqa: E402
from models.yolo import ClassificationModel  # noqa: E402

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------- the new block type
class C1(nn.Module):
    """ultralytics' C1, with the widths of the convs before the last as an argument (`c_`, a pruning plan's): the
    last conv's output is added to cv1's, so those two keep one width, the block's output."""

    def __init__(self, c1, c2, n=1, c_=None):
        super().__init__()
        inner = list(c_) if c_ is not None else [c2] * (n - 1)
        self.cv1 = Conv(c1, c2, 1, 1)
        self.m = nn.Sequential(*(Conv(a, b, 3) for a, b in zip([c2, *inner], [*inner, c2])))

    def forward(self, x):
        y = self.cv1(x)
        return self.m(y) + y


class C1Handler(Handler):
    """The stream (cv1 and the last conv, added) is one group; each conv before the last is its own."""

    def groups(self, s):
        return {f"{s.prefix}.stream": s.c2_full, **{f"{s.prefix}.m.{j}": s.c2_full for j in range(s.n - 1)}}

    def build(self, s, w):
        c2 = w[f"{s.prefix}.stream"]
        return C1(s.c1, c2, s.n, c_=[w[f"{s.prefix}.m.{j}"] for j in range(s.n - 1)]), c2, s.c2_full, None

    def trace(self, t, p, m, layout):
        stream = y = t.conv(f"{p}.cv1", m.cv1, layout, group_name=f"{p}.stream")
        *inner, last = m.m
        for j, conv in enumerate(inner):
            y = t.conv(f"{p}.m.{j}", conv, y)
        t.inputs[f"{p}.m.{len(inner)}"] = y
        return t.join(stream, f"{p}.m.{len(inner)}", last, p)


C1_SPEC = BlockSpec(C1, ("C1",), Args(), C1Handler(), repeats_inside=True,
                    ultralytics="ultralytics.nn.modules.block.C1")


# ---------------------------------------------------------------------------------------------- tests
def c1_yaml():
    return {"nc": 5, "depth_multiple": 1.0, "width_multiple": 1.0,
            "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 3, "C1", [32]], [-1, 1, "Conv", [64, 3, 2]],
                         [-1, 1, "C1", [64]]],
            "head": [[-1, 1, "Classify", ["nc"]]]}


@pytest.fixture
def c1():
    with registered(C1_SPEC):
        yield C1_SPEC
    assert spec_named("C1") is None  # nothing left behind for other tests


def test_the_registry_knows_a_block_only_while_registered(c1):
    assert "C1" in yaml_names()
    names = {_global_name(item) for item in allowed_globals(torchvision=False)}
    assert "ultralytics.nn.modules.block.C1" in names  # its ultralytics pickles load onto this class
    groups = {g.name: g.members for g in channel_groups(ClassificationModel(c1_yaml()))}
    assert groups["model.1.stream"] == ["model.1.cv1", "model.1.m.2"] and groups["model.1.m.0"] == ["model.1.m.0"]
    assert groups["model.3.stream"] == ["model.3.cv1", "model.3.m.0"]


def test_unregistered_block_is_an_unknown_module():
    with pytest.raises(ValueError, match="layer 1: unknown module 'C1'"):
        ClassificationModel(c1_yaml())
    names = {_global_name(item) for item in allowed_globals(torchvision=False)}
    assert "ultralytics.nn.modules.block.C1" not in names


@pytest.mark.parametrize("prune", [{"rate": 0.5}, {"rate": [0.0, 0.75, 0.5, 0.25, 0.5]},
                                   {"widths": {"model.1.stream": 16, "model.1.m.0": 8, "model.1.m.1": 24}}])
def test_pruning_dead_filters_of_the_new_block_changes_nothing(c1, tmp_path, prune):
    """Pruned from a checkpoint (weights only: the YAML rebuilds the new block) by rates or a widths plan."""
    torch.manual_seed(0)
    src = lively(ClassificationModel(c1_yaml())).eval()
    model = ClassificationModel(c1_yaml(), **prune)
    assert model.model[1].cv1.conv.out_channels < 32
    scores = silence_pruned_filters(src, model)
    weights = save_checkpoint(checkpoint_dict(src), tmp_path / "src.pt")
    load_model(model, weights, scores)
    torch.testing.assert_close(model.eval()(X), src(X), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_pruned_new_block_exports_to_onnx_and_ultralytics(c1, tmp_path):
    """export.py writes the pruned model as ONNX and, through the spec's counterpart, as an ultralytics checkpoint
    that ultralytics' own loader runs: both give the model's logits."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ultralytics")
    from export import run
    from models.experimental import attempt_load
    from models.io.ultralytics_export import ultralytics_logits

    torch.manual_seed(0)
    src = lively(ClassificationModel(c1_yaml())).eval()
    model = ClassificationModel(c1_yaml(), rate=0.5)
    load_model(model, src, silence_pruned_filters(src, model)).eval()
    model.names = [f"c{i}" for i in range(5)]
    weights = save_checkpoint(checkpoint_dict(model), tmp_path / "c1.pt")
    onnx_file, ul_file = run(weights=weights, imgsz=32, include=["onnx", "ultralytics"])

    import onnxruntime as ort

    x = X[:1]  # the ONNX file's batch size
    expected = attempt_load(weights)(x)
    torch.testing.assert_close(expected, src(x), atol=1e-5, rtol=0)  # pruned only dead filters
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    torch.testing.assert_close(onnx_out, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ultralytics_logits(ul_file, x), expected, atol=1e-4, rtol=1e-4)
    layer = torch.load(ul_file, weights_only=False)["model"].model[1]  # ultralytics' own C1, the spec's counterpart
    assert f"{type(layer).__module__}.{type(layer).__name__}" == "ultralytics.nn.modules.block.C1"


def test_a_spec_is_refused_when_unsafe_or_clashing(c1):
    with pytest.raises(TypeError, match="torch.nn.Module subclass"):
        register(BlockSpec(print, ("Print",)))
    with pytest.raises(ValueError, match="must start with 'ultralytics.'"):
        register(BlockSpec(type("Shadow", (nn.Module,), {}), ultralytics="collections.OrderedDict"))
    with pytest.raises(ValueError, match="YAML name is already registered by C1's"):
        register(BlockSpec(type("Other", (nn.Module,), {}), ("C1",)))
    with pytest.raises(ValueError, match="class is already registered"):
        register(BlockSpec(C1, ("C1b",)))
