"""benchmarks/recipes.py: recipe names, the summary table, and one tiny end-to-end run whose finished runs are reused."""

import sys
from pathlib import Path

import pandas as pd
import pytest

from data.builtin import make_builtin_dataset

from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import recipes  # noqa: E402


def test_recipe_names_map_to_train_options(tmp_path, monkeypatch):
    import yaml

    monkeypatch.setattr(recipes, "HYP_DIR", tmp_path)
    assert recipes.recipe_options("cut", 10, "b.pt") == {}
    assert recipes.recipe_options("cut-kd", 10, "b.pt") == {"teacher": "b.pt"}
    assert recipes.recipe_options("fade", 10, "b.pt") == {"fade_epochs": 5}  # classify/prune.py's default share
    assert recipes.recipe_options("fade", 1, "b.pt") == {"fade_epochs": 1}
    assert recipes.recipe_options("fade25-kd", 10, "b.pt") == {"teacher": "b.pt", "fade_epochs": 10}  # capped
    assert recipes.recipe_options("fade-kdref-cos-lr0.0005", 10, "b.pt", "r.pt") == {
        "teacher": "r.pt", "cos_lr": True, "lr0": 0.0005, "fade_epochs": 5}
    assert recipes.recipe_options("cut-kd-a0.8", 10, "b.pt") == {"teacher": "b.pt", "distill_alpha": 0.8}
    assert recipes.recipe_options("fade5-kd-cos-ul", 10, "b.pt") == {"teacher": "b.pt", "cos_lr": True,
                                                                     "plan": "ultralytics", "fade_epochs": 5}
    assert recipes.recipe_options("cut-kd-t2-ls0", 10, "b.pt") == {"teacher": "b.pt", "distill_t": 2.0,
                                                                   "label_smoothing": 0.0}
    assert recipes.recipe_options("cut-kd-f10", 10, "b.pt") == {"teacher": "b.pt", "distill_features": 10.0}
    assert recipes.recipe_options("fade-sgd-lr0.01-bs32-wd0.0005-wu1-carry-do0.2", 10, "b.pt") == {
        "dropout": 0.2, "optimizer": "SGD", "lr0": 0.01, "batch_size": 32, "decay": 0.0005, "warmup_epochs": 1.0,
        "cut_optimizer": "carry", "fade_epochs": 5}
    assert recipes.recipe_options("fade4-steps2", 10, "b.pt") == {"prune_steps": 2, "fade_epochs": 4}
    assert recipes.recipe_options("fade-restart-ema100", 10, "b.pt") == {"restart_lr": True, "ema_tau": 100.0,
                                                                        "fade_epochs": 5}
    half = recipes.recipe_options("fade-aug0.5", 10, "b.pt")["hyp"]
    assert yaml.safe_load(open(half)) == {"scale": [0.54, 1.0], "fliplr": 0.25, "flipud": 0.0, "jitter": 0.2,
                                          "label_smoothing": 0.1, "mixup": 0.0}  # defaults (0.08, 0.5, 0.4) halved
    from utils.hyp import load_hyp

    load_hyp(half)  # a valid --hyp file
    mixed = recipes.recipe_options("fade-kd-mix0.5", 10, "b.pt")["hyp"]
    assert load_hyp(mixed)["mixup"] == 0.5 and load_hyp(mixed)["scale"] == [0.08, 1.0]
    for bad in ("trim", "cut-xx"):
        with pytest.raises(ValueError, match=bad.split("-")[-1]):
            recipes.recipe_options(bad, 10, "")


def test_early_pruning_takes_a_snapshot_and_the_epochs_it_skipped():
    assert recipes.snapshot_epochs("fade5-kd-cos-at0.5", 20) == 10 and recipes.snapshot_epochs("fade5-kd", 20) is None
    assert recipes.recipe_options("fade5-kd-at0.25", 10, "b.pt") == {"teacher": "b.pt", "fade_epochs": 5}
    with pytest.raises(ValueError, match="within the 20 baseline epochs"):
        recipes.snapshot_epochs("cut-at1", 20)


def test_summary_gives_mean_min_max_per_dataset_and_the_mean_over_datasets():
    rows = [dict(data=d, seed=s, row=r, rate=0.5, flops=0.3, top1_last=v)
            for d, r, vals in (("a", "scratch", (0.5, 0.7)), ("b", "scratch", (0.9, 0.9)), ("a", "fade", (0.8, 0.8)),
                               ("b", "fade", (0.6, 1.0)))
            for s, v in enumerate(vals)]
    text = recipes.summary(pd.DataFrame(rows))
    assert "| 0.5 | scratch | 0.300 | 0.600 (0.500–0.700) | 0.900 (0.900–0.900) | **0.750** |" in text
    assert "| 0.5 | fade | 0.300 | 0.800 (0.800–0.800) | 0.800 (0.600–1.000) | **0.800** |" in text


@pytest.mark.slow
def test_a_tiny_benchmark_runs_every_row_and_reuses_finished_runs(tmp_path, monkeypatch):
    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    argv = ["--data", str(data), "--seeds", "0", "--epochs", "2", "--finetune-epochs", "1", "--rates", "0.5",
            "--recipes", "cut", "fade", "cut-at0.5", "--batch-size", "16", "--project", str(tmp_path / "runs"),
            "--name", "b", "--sparsity", "0.01"]
    table = recipes.main(recipes.parse_opt(argv))
    assert table["row"].tolist() == ["baseline", "reference", "reference-kd", "baseline sp0.01", "scratch",
                                     "uniform cut", "uniform fade", "uniform cut-at0.5", "sp0.01 uniform cut",
                                     "sp0.01 uniform fade"]  # pruned early: from the plain baseline's snapshot only
    pruned = table.set_index("row")
    assert pruned.loc["uniform fade", "parameters"] == pruned.loc["scratch", "parameters"]
    assert pruned.loc["sp0.01 uniform fade", "parameters"] == pruned.loc["scratch", "parameters"]
    folder = Path(f"{data}-seed0")  # an absolute --data path: the pair folder sits beside it
    from models.io.checkpoints import load_checkpoint

    assert load_checkpoint(folder / "baseline-sp0.01" / "weights" / "last.pt")["opt"]["sparsity"] == 0.01
    assert load_checkpoint(folder / "sp0.01-uniform-cut-0.5" / "weights" / "last.pt")["opt"]["weights"] == str(
        folder / "baseline-sp0.01" / "weights" / "best.pt")  # pruned from the sparse baseline, ranked on it
    assert (folder / "ranks-sp0.01-bn.pt").is_file()
    early = load_checkpoint(folder / "uniform-cut-at0.5-0.5" / "weights" / "last.pt")["opt"]
    assert early["weights"] == str(folder / "baseline-snap1" / "weights" / "epoch1.pt") and early["epochs"] == 2
    assert pruned.loc["scratch", "flops"] < 0.5 and pruned.loc["baseline", "flops"] == 1.0
    assert (tmp_path / "runs" / "b" / "recipes.md").is_file() and (tmp_path / "runs" / "b" / "recipes.csv").is_file()

    from classify import train as train_cli

    def no_training(**kwargs):
        raise AssertionError(f"retrained {kwargs['name']}")

    monkeypatch.setattr(train_cli, "run", no_training)  # same options again: every run is reused
    again = recipes.main(recipes.parse_opt(argv + ["--exist-ok"]))
    pd.testing.assert_series_equal(again["top1_last"], table["top1_last"])


@pytest.mark.slow
def test_latency_rows_allocate_at_the_uniform_rates_measured_latency(tmp_path, counted_timing):
    """--latency adds widths allocated by the ONNX Runtime latency table for the uniform rate's measured latency, and
    every plan row carries its measured latency (a deterministic clock here: shapes and bookkeeping, not speed)."""
    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    argv = ["--data", str(data), "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--rates", "0.5",
            "--recipes", "cut", "--references", "--batch-size", "16", "--latency", "--project", str(tmp_path / "runs")]
    table = recipes.main(recipes.parse_opt(argv)).set_index("row")
    assert list(table.index) == ["baseline", "reference", "scratch", "uniform cut", "scratch latency-allocated",
                                 "latency-allocated cut"]  # an allocated plan has a scratch row of its own
    assert table.loc["scratch latency-allocated", "parameters"] == table.loc["latency-allocated cut", "parameters"]
    uniform, allocated = table.loc["uniform cut", "latency"], table.loc["latency-allocated cut", "latency"]
    assert 0.9 * uniform <= allocated <= uniform and 0 < uniform < 1
    assert list((tmp_path / "runs" / "exp").glob("latency-onnxruntime-b1-*.json"))
    assert "| latency |" in (tmp_path / "runs" / "exp" / "recipes.md").read_text()
    with pytest.raises(SystemExit):
        recipes.parse_opt(argv + ["--jobs", "2"])
