"""Model core: YAMLs reproduce upstream YOLOv5-cls, per-layer rates, widths and forward passes."""

import pytest
import torch

from models.common import C3, Classify, Conv
from models.rates import kept_width, parse_rates
from models.yolo import ClassificationModel, DetectionModel, layer_names, load_yaml
from utils.model_info import count_params, layer_rows, model_info

# Measured from upstream YOLOv5: ClassificationModel(DetectionModel('yolov5X.yaml'), nc=1000, cutoff=10)
UPSTREAM_PARAMS = {"n": 2_493_000, "s": 5_453_480, "m": 12_957_640, "l": 26_552_680, "x": 48_097_160}
NAMES10 = layer_names(load_yaml("yolov5s-cls.yaml"))


@pytest.mark.parametrize("size", list(UPSTREAM_PARAMS))
def test_parameter_counts_match_upstream(size):
    with torch.device("meta"):  # shapes only: fast even for yolov5x
        model = ClassificationModel(f"yolov5{size}-cls.yaml")
        cut = ClassificationModel(model=DetectionModel(f"yolov5{size}.yaml"), nc=1000, cutoff=10) if size == "n" else None
    assert count_params(model) == UPSTREAM_PARAMS[size]
    if cut is not None:  # the YAML classifier is exactly the detector cut at layer 10
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in cut.state_dict().items()}


def test_state_dict_keys_are_upstreams():
    keys = set(ClassificationModel("yolov5n-cls.yaml").state_dict())
    for k in ("model.0.conv.weight", "model.0.bn.running_mean", "model.2.cv1.conv.weight",
              "model.2.m.0.cv2.bn.running_var", "model.2.cv3.bn.num_batches_tracked",
              "model.9.conv.conv.weight", "model.9.linear.weight", "model.9.linear.bias"):
        assert k in keys
    assert all(k.startswith("model.") for k in keys)


def test_model_layout_is_yaml_order():
    model = ClassificationModel("yolov5s-cls.yaml", nc=7)
    assert isinstance(model.model, torch.nn.Sequential) and len(model.model) == 10
    assert [m.i for m in model.model] == list(range(10))
    assert all(m.f == -1 for m in model.model)
    assert isinstance(model.model[2], C3) and isinstance(model.model[0], Conv) and isinstance(model.model[9], Classify)
    assert model.model[9].type == "models.common.Classify" and model.model[9].np == count_params(model.model[9])
    assert model.nc == 7 and model.model[9].linear.out_features == 7


@pytest.mark.parametrize("spec,expected", [
    (None, [0.0] * 10),
    (0.3, [0.3] * 10),
    ("0.25", [0.25] * 10),
    ("[0.]+[0.3]*8+[0.]", [0.0] + [0.3] * 8 + [0.0]),
    ("[0.]+[0.3]*4+[0.5]*5", [0.0] + [0.3] * 4 + [0.5] * 5),
    ("[0.1, 0.2]*5", [0.1, 0.2] * 5),
    ("0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0", [0, .1, .2, .3, .4, .5, .6, .7, .8, 0]),
    ([0.5] * 10, [0.5] * 10),
])
def test_rate_parser_accepts(spec, expected):
    assert parse_rates(spec, NAMES10) == pytest.approx(expected)


@pytest.mark.parametrize("spec,words", [
    ("[0.3]*9", ["got 9", "10 rates", "9 Classify"]),
    ("0.1,0.2", ["got 2", "10 rates"]),
    (1.0, ["1 is outside [0, 1)"]),
    ("[0.]+[1.5]*9", ["out of [0, 1)", "layer 1 Conv: 1.5"]),
    (-0.1, ["outside [0, 1)"]),
    ("abc", ["cannot parse", "10 rates"]),
    ("[0.]+__import__('os')", ["cannot parse"]),
    ("[0.3]*x", ["cannot parse"]),
    ("", ["empty"]),
])
def test_rate_parser_rejects_with_one_line(spec, words):
    with pytest.raises(ValueError) as e:
        parse_rates(spec, NAMES10)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_kept_width_rule():
    assert kept_width(64, 0.0) == 64
    assert kept_width(64, 0.5) == 32
    assert kept_width(64, 0.3) == 48  # 44.8 → nearest multiple of 8
    assert kept_width(1280, 0.3) == 896
    assert kept_width(8, 0.5) == 4  # small groups: plain rounding
    assert kept_width(16, 0.99) == 8  # never below 8 for groups of 16+
    assert kept_width(3, 0.9) == 1  # never below 1
    for c in (16, 32, 48, 128, 1280):
        widths = [kept_width(c, r / 20) for r in range(20)]
        assert widths == sorted(widths, reverse=True) and all(w % 8 == 0 for w in widths)


def test_rate_zero_equals_unpruned_model():
    torch.manual_seed(0)
    a = ClassificationModel("yolov5n-cls.yaml", nc=10).eval()
    torch.manual_seed(0)
    b = ClassificationModel("yolov5n-cls.yaml", nc=10, rate="[0.]*10").eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.75, "[0.]+[0.3]*4+[0.5]*5"])
def test_forward_shapes_at_rates(rate):
    model = ClassificationModel("yolov5n-cls.yaml", nc=5, rate=rate).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    for i, mod, r, kept, full in layer_rows(model):
        assert kept == kept_width(full, r)
    if rate:
        assert count_params(model) < count_params(ClassificationModel("yolov5n-cls.yaml", nc=5))


def test_c3_inner_widths_follow_rate():
    c3 = ClassificationModel("yolov5s-cls.yaml", rate=0.5).model[4]
    assert c3.cv1.conv.out_channels == c3.cv2.conv.out_channels == 32  # hidden 64 → 32
    assert all(b.cv1.conv.out_channels == 32 and b.add for b in c3.m)
    assert c3.cv3.conv.in_channels == 64 and c3.cv3.conv.out_channels == 64


def test_yaml_rate_key_and_override(tmp_path):
    d = load_yaml("yolov5n-cls.yaml")
    d["rate"] = "[0.]+[0.5]*8+[0.]"
    assert ClassificationModel(d).yaml["rate"] == [0.0] + [0.5] * 8 + [0.0]
    assert ClassificationModel(d, rate=0.25).yaml["rate"] == [0.25] * 10  # argument overrides the YAML


def test_unknown_yaml_is_clear_error():
    with pytest.raises(FileNotFoundError, match="yolov5s-cls.yaml"):
        ClassificationModel("yolov5q-cls.yaml")


def test_model_info_reports_params_and_gflops():
    info = model_info(ClassificationModel("yolov5n-cls.yaml"), imgsz=224)
    half = model_info(ClassificationModel("yolov5n-cls.yaml", rate=0.5), imgsz=224)
    assert info["parameters"] == UPSTREAM_PARAMS["n"]
    assert 0.3 < info["gflops"] < 0.6 and half["gflops"] < info["gflops"] / 2.5
