"""Shared test setup: repo root on sys.path, small CPU-friendly torch settings, shared fixtures."""

import logging
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def datasets_dir(tmp_path, monkeypatch):
    """Nothing may touch the real datasets folder: DATASETS_DIR (and its env override, inherited by
    subprocesses) point at tmp_path/datasets for every test. Request it by name to get that path."""
    import utils.datasets

    d = tmp_path / "datasets"
    monkeypatch.setenv("YOLOV5_DATASETS_DIR", str(d))
    monkeypatch.setattr(utils.datasets, "DATASETS_DIR", d)
    return d


@pytest.fixture
def logs(caplog):
    """Records of the project LOGGER, INFO and above (it does not propagate to the root logger caplog listens on).
    Filter by level where needed: [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]."""
    from utils.log import LOGGER

    LOGGER.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    yield caplog
    LOGGER.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny built-in dataset (10 classes, 8 train and 4 val images each, 32 px), made once per test module."""
    from data.builtin import make_builtin_dataset

    return make_builtin_dataset(tmp_path_factory.mktemp("data") / "tiny", n_train=8, n_val=4, size=32)


@pytest.fixture
def counted_timing(monkeypatch):
    """Every module is still exported and run once on its runtime, but its 'seconds' are a fixed overhead plus its
    FLOPs: deterministic, so a plan's allocation can be checked end to end."""
    from torch.utils.flop_counter import FlopCounterMode

    import models.latency as latency

    real = latency.Runner.callable

    def callable_(self, module, inputs, spinning=True):
        run = real(self, module, inputs, spinning)
        run()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module.to("cpu")(*(x.cpu() for x in inputs))
        return lambda: 1e-7 + 1e-12 * counter.get_total_flops()

    monkeypatch.setattr(latency.Runner, "callable", callable_)
    monkeypatch.setattr(latency.Runner, "fastest", staticmethod(lambda fns, *a, **k: [fn() for fn in fns]))


TIERS = ("subprocess", "distributed", "slow")


def pytest_collection_modifyitems(items):
    """Every test without a tier marker is a unit test: `-m unit` selects them, `-m "not slow"` the quick tiers."""
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(pytest.mark.unit)
