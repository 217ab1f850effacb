"""classify/prune.py: the README's main job, end to end on tiny generated data."""

import subprocess
import sys

import pandas as pd
import pytest
import torch

from classify import prune as pipeline
from data.builtin import make_builtin_dataset
from models.experimental import attempt_load
from models.io.checkpoints import load_checkpoint
from utils.paths import ROOT


@pytest.mark.slow
def test_pipeline_baseline_ranks_finetune_summary(tmp_path, logs, monkeypatch):
    import utils.device

    monkeypatch.setattr(utils.device, "_announced", set())  # as in a fresh process
    reads, real_load = [], torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    data = make_builtin_dataset(tmp_path / "tiny", n_train=8, n_val=4, size=32)
    out = pipeline.run(cfg="yolov5n-cls.yaml", data=str(data), rate="0.5", criterion="hrank", rank_batches=1,
                       epochs=1, finetune_epochs=1, batch_size=16, imgsz=32, device="cpu", workers=0,
                       project=tmp_path / "runs", name="exp")
    save_dir = out["save_dir"]
    assert (save_dir / "baseline" / "weights" / "best.pt").is_file() and (save_dir / "ranks.pt").is_file()
    # ranking, pruning, both fine-tunes, their teacher and the summary take the baseline from memory: one read
    assert reads.count(str(out["baseline"])) == 1, reads
    pruned = load_checkpoint(out["pruned"])
    assert pruned["yaml"]["rate"] == [0.5] * 10
    table = pd.read_csv(save_dir / "summary.csv", index_col="model")
    scratch = "pruned architecture from scratch (2 epochs)"  # baseline + fine-tune epochs
    assert list(table.index) == ["baseline", "pruned (rate 0.5)", "pruned + BN recalibrated", "baseline + 1 epoch",
                                 "pruned + 1 epoch", scratch]
    # fine-tunes distil from the baseline by default, the unpruned reference as well as the pruned model
    assert table["distilled"].tolist() == ["no", "-", "-", "yes", "yes", "no"]
    for name in ("pruned", "baseline-ft"):
        assert load_checkpoint(save_dir / name / "weights" / "last.pt")["opt"]["teacher"] == str(out["baseline"])
    # the pruned filters faded out over the default share of the fine-tune (at least one epoch), then were cut
    assert load_checkpoint(save_dir / "pruned" / "weights" / "last.pt")["opt"]["fade_epochs"] == 1
    # scratch: the pruned architecture, no weights, trained as long as baseline + fine-tune
    scratch_ckpt = load_checkpoint(out["scratch"])
    assert scratch_ckpt["opt"]["weights"] == "" and scratch_ckpt["opt"]["epochs"] == 2
    assert table.loc[scratch, "parameters"] == table.loc["pruned + 1 epoch", "parameters"]
    assert any("gain of pruning ('pruned + 1 epoch' vs '" + scratch in r.getMessage() for r in logs.records)
    assert table.loc["pruned + 1 epoch", "parameters"] < 0.5 * table.loc["baseline + 1 epoch", "parameters"]
    assert table.loc["baseline + 1 epoch", "parameters"] == table.loc["baseline", "parameters"]
    assert table.loc["pruned (rate 0.5)", "GFLOPs"] < table.loc["baseline", "GFLOPs"]
    assert table[["top1_last", "top1_best", "top5_last", "top5_best"]].stack().between(0, 1).all()
    # untrained rows have one number for both rules; trained rows are each run's best.pt and last.pt
    untrained = ["pruned (rate 0.5)", "pruned + BN recalibrated"]
    assert (table.loc[untrained, "top1_last"] == table.loc[untrained, "top1_best"]).all()
    last = attempt_load(save_dir / "pruned" / "weights" / "last.pt")
    assert last.model[1].conv.out_channels == attempt_load(out["pruned"]).model[1].conv.out_channels
    summary = "\n".join(r.getMessage() for r in logs.records if "Pruning summary" in r.getMessage())
    assert "top1 last" in summary and "top1 best" in summary and "best.pt, the epoch with the highest top-1" in summary
    assert "top1 (last epoch)" in summary  # the cost and gain lines say which rule they compare
    messages = [r.getMessage() for r in logs.records]  # nested train/rank runs are quiet
    assert sum("torch-" in m for m in messages) == 1  # the device banner, once
    assert not any(m.startswith(("classify/train:", "classify/rank:")) for m in messages)  # no nested option dumps
    assert not any(m.startswith("Validate:") for m in messages)  # no hints of the baseline mid-pipeline
    assert sum("pruned/unpruned" in m for m in messages) == 2  # fine-tune and scratch; the baseline is not pruned
    assert not any("\033[" in m for m in messages)  # no colour codes where the log is not a terminal

    # From a trained classifier (--weights, no --cfg): no baseline training, the architecture comes from the file.
    # --teacher '' fine-tunes with plain cross-entropy, and the table says so.
    again = pipeline.run(weights=str(out["baseline"]), data=str(data), rate="[0.]+[0.25]*9", criterion="l1",
                         finetune_epochs=1, batch_size=16, imgsz=32, device="cpu", workers=0,
                         project=tmp_path / "runs", name="exp", teacher="", fade_epochs=0, no_scratch=True)
    assert not (again["save_dir"] / "baseline").exists() and again["save_dir"].name == "exp2"
    assert reads.count(str(out["baseline"])) == 2, reads  # --weights: read once more, by this second run
    assert not (again["save_dir"] / "scratch").exists() and again["scratch"] is None
    table = pd.read_csv(again["save_dir"] / "summary.csv", index_col="model")
    assert table["distilled"].tolist() == ["-", "-", "-", "no", "no"]
    assert load_checkpoint(again["pruned"])["opt"]["fade_epochs"] == 0
    assert load_checkpoint(again["pruned"])["opt"]["teacher"] == ""
    assert load_checkpoint(again["pruned"])["yaml"]["rate"] == [0.0] + [0.25] * 9


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("rate,words", [("0", "nothing to prune"), ("[0.5]*3", "10 rates")])
def test_pipeline_bad_rate_is_one_line_before_any_work(tmp_path, rate, words):
    res = subprocess.run([sys.executable, "classify/prune.py", "--rate", rate, "--project", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and words in res.stderr
    assert not any(tmp_path.iterdir())  # no run folder was made


@pytest.mark.subprocess
@pytest.mark.slow
def test_pipeline_bad_fade_epochs_is_one_line_before_any_work(tmp_path):
    res = subprocess.run([sys.executable, "classify/prune.py", "--fade-epochs", "9", "--finetune-epochs", "8",
                          "--project", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--fade-epochs must be between 0 and --finetune-epochs (8), not 9" in res.stderr
    assert not any(tmp_path.iterdir())
