"""utils/hyp.py (--hyp): defaults, partial files, one-line errors, and the override by --label-smoothing."""

import pytest
import yaml

import classify.train as train
from utils.hyp import DEFAULT_HYP, load_hyp, save_hyp
from utils.paths import ROOT

YOLOV5 = {"scale": [0.08, 1.0], "fliplr": 0.5, "flipud": 0.0, "jitter": 0.4, "label_smoothing": 0.1, "mixup": 0.0}


def test_defaults_are_yolov5s_and_missing_keys_take_them(tmp_path):
    assert load_hyp() == load_hyp("") == load_hyp(DEFAULT_HYP) == YOLOV5
    f = tmp_path / "hyp.yaml"
    f.write_text("scale: [0.5, 1]\nfliplr: 0\n")
    assert load_hyp(f) == dict(YOLOV5, scale=[0.5, 1.0], fliplr=0.0)
    assert load_hyp(ROOT / "data" / "hyps" / "hyp.digits.yaml") == dict(YOLOV5, scale=[0.5, 1.0], fliplr=0.0,
                                                                          jitter=0.0)


def test_saved_settings_read_back(tmp_path):
    hyp = load_hyp({"flipud": 0.25})
    assert load_hyp(save_hyp(hyp, tmp_path / "hyp.yaml")) == hyp
    assert yaml.safe_load((tmp_path / "hyp.yaml").read_text()) == hyp


@pytest.mark.parametrize("text,words", [
    ("mosaic: 1.0\nfliplr: 0\n", ["unknown key", "mosaic", "known keys: scale, fliplr"]),
    ("fliplr: 1.5\n", ["fliplr", "[0, 1]"]),
    ("flipud: -0.1\n", ["flipud", "[0, 1]"]),
    ("scale: [0.9, 0.5]\n", ["scale", "min <= max"]),
    ("scale: [0, 1]\n", ["scale", "0 < min"]),
    ("scale: 0.5\n", ["scale", "[min, max]"]),
    ("jitter: 2\n", ["jitter", "[0, 1]"]),
    ("jitter: strong\n", ["jitter", "expected a number"]),
    ("label_smoothing: 1\n", ["label_smoothing", "[0, 1)"]),
    ("mixup: 1.5\n", ["mixup", "[0, 1]"]),
    ("- 1\n- 2\n", ["mapping"]),
    ("scale: [0.5, 1\n", ["not valid YAML"]),
])
def test_bad_file_is_one_clear_error(tmp_path, text, words):
    f = tmp_path / "hyp.yaml"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        load_hyp(f)
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_hyp(tmp_path / "nope.yaml")


def test_label_smoothing_flag_overrides_the_file(tmp_path):
    f = tmp_path / "hyp.yaml"
    f.write_text("label_smoothing: 0.2\n")
    opt = train.parse_opt(argv=["--hyp", str(f)])
    assert train.training_hyp(opt)["label_smoothing"] == 0.2
    opt = train.parse_opt(argv=["--hyp", str(f), "--label-smoothing", "0"])
    assert train.training_hyp(opt)["label_smoothing"] == 0.0
    resumed = {"hyp": dict(YOLOV5, label_smoothing=0.05)}  # a resumed run keeps the values it was started with
    assert train.training_hyp(opt, resumed)["label_smoothing"] == 0.05
