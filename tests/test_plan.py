"""One plan type (models/plan.py): every way of saying the widths resolves to the same Plan, on one width grid."""

import pytest
import yaml

from models.budget import plan_for_target
from models.costs import CostModel, choices
from models.plan import Plan
from models.rates import WIDTH_STEP, on_grid
from models.yolo import ClassificationModel


@pytest.mark.parametrize("cfg", ["yolov5n-cls.yaml", "yolo11n-cls.yaml"])
@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_a_rate_gives_the_same_plan_built_or_not(cfg, rate):
    """--rate through parse_model (a built model) and Plan.uniform (the allocator's uniform baseline) agree."""
    full = Plan.full(cfg, nc=10)
    built = Plan.of_yaml(cfg, rate=rate, nc=10)
    assert built == Plan.uniform(full, rate) and built.narrower_than(full) and not full.narrower_than(full)
    assert set(built) == set(CostModel(cfg, 32, nc=10).full)  # the groups a plan may narrow, as the allocator sees


def test_an_allocated_plan_is_carried_by_its_yaml(tmp_path):
    cfg = "yolov5n-cls.yaml"
    plan = plan_for_target(cfg, "flops", 0.5, 32, nc=10)
    assert isinstance(plan, Plan) and plan.narrower_than(Plan.full(cfg, nc=10))
    saved = plan.save(tmp_path / "plan.yaml", cfg)
    text = (tmp_path / "plan.yaml").read_text()
    assert "!!python" not in text and yaml.safe_load(text) == saved  # plain YAML: no Plan object inside
    for source in (tmp_path / "plan.yaml", saved):  # the file and the dict rebuild the same widths
        assert Plan.of_model(ClassificationModel(str(source) if not isinstance(source, dict) else source)) == plan
    assert Plan.of_yaml(saved) == plan


def test_one_width_grid():
    assert [on_grid(64, k) for k in (0, 3, 4, 12, 13, 60, 99)] == [8, 8, 8, 16, 16, 64, 64]
    assert [on_grid(12, k) for k in (0, 5, 13)] == [1, 5, 12]  # small groups: any width
    for full in (12, 16, 24, 1280):  # the allocator's choices are exactly the widths on the grid
        assert [c for c in choices(full) if on_grid(full, c) != c] == []
        assert all(c % WIDTH_STEP == 0 or c == full for c in choices(full)) or full < 16
