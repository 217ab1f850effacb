"""classify/train.py: run files, EMA validation, resume (in-process and after SIGKILL), DDP on CPU, CLI errors,
pruned training. Tiny generated data (10 classes x 8 images at 32 px) and yolov5n-cls keep it CPU-fast."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import classify.train as train
import models.trainer as trainer
from classify import val
from models.experimental import attempt_load
from models.io.checkpoints import checkpoint_dict, save_checkpoint
from models.io.ranks import load_scores
from models.yolo import ClassificationModel
from utils.results import COLUMNS

from helpers import ROOT

TRAIN = str(ROOT / "classify" / "train.py")
COMMON = dict(cfg="yolov5n-cls.yaml", imgsz=32, batch_size=16, workers=0, device="cpu", seed=0)


def cli_args(options):
    """['--batch-size', '16', ...] from a dict of run() options."""
    args = []
    for k, v in options.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def subprocess_env(tmp):
    env = dict(os.environ, OMP_NUM_THREADS="1", YOLOV5_DATASETS_DIR=str(tmp / "datasets"), PYTHONPATH=str(ROOT))
    env.pop("YOLOV5_DEBUG", None)
    return env


def signal_once_saved(args, env, last, sig):
    """Start a training subprocess, send it `sig` as soon as `last` exists; (finished process, its stderr)."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert last.exists(), proc.stderr.read() if proc.poll() is not None else "no last.pt in time"
        proc.send_signal(sig)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    return proc, err


def read_results(save_dir):
    return pd.read_csv(Path(save_dir) / "results.csv")


@pytest.fixture(scope="module")
def two_epochs(data, tmp_path_factory):
    """An uninterrupted 2-epoch run, shared by the file checks and the resume-equivalence test."""
    project = tmp_path_factory.mktemp("runs")
    return train.run(data=str(data), epochs=2, project=str(project), name="full", **COMMON)


@pytest.fixture(scope="module")
def source_weights(tmp_path_factory):
    """A tiny yolov5n classifier checkpoint (random weights, random BN gammas so l1/bn ranks differ)."""
    torch.manual_seed(1)
    model = ClassificationModel("yolov5n-cls.yaml", nc=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.1, 1.0)
    return save_checkpoint(checkpoint_dict(model), tmp_path_factory.mktemp("src") / "yolov5n-src.pt")


def test_two_epochs_write_run_files(two_epochs):
    save_dir = two_epochs["save_dir"]
    for f in ("weights/last.pt", "weights/best.pt", "results.csv", "results.png", "opt.yaml"):
        assert (save_dir / f).is_file(), f
    df = read_results(save_dir)
    assert list(df.columns) == list(COLUMNS) == ["epoch", "train/loss", "val/loss", "metrics/accuracy_top1",
                                                 "metrics/accuracy_top5", "lr/0"]
    assert df["epoch"].tolist() == [0, 1] and two_epochs["epochs"] == 2
    assert df["lr/0"].iloc[1] < df["lr/0"].iloc[0]  # linear schedule stepped once per epoch


def test_checkpoints_are_weights_only_and_complete(two_epochs):
    last = torch.load(two_epochs["last"], weights_only=True)
    best = torch.load(two_epochs["best"], weights_only=True)
    for k in ("model", "ema", "optimizer", "scheduler", "epoch", "best_fitness", "opt", "updates", "rng", "results"):
        assert last[k] is not None, k
    assert last["epoch"] == 1 and last["finished"] and last["updates"] == 2 * 5  # 80 images / batch 16
    assert isinstance(last["opt"]["project"], str) and last["opt"]["epochs"] == 2
    assert best["optimizer"] is None and best["ema"] is None  # for use: EMA weights as the model, no training state
    assert best["model"].keys() == last["ema"].keys()
    model = attempt_load(two_epochs["best"])
    assert not model.training and model.nc == 10 and len(model.names) == 10


def test_val_reproduces_logged_accuracy_of_ema(two_epochs, data, tmp_path):
    df = read_results(two_epochs["save_dir"])
    top1_last = val.run(data=str(data), weights=two_epochs["last"], batch_size=32, imgsz=32, device="cpu",
                        workers=0, project=tmp_path, name="last")[0]
    assert top1_last == pytest.approx(df["metrics/accuracy_top1"].iloc[-1], abs=1e-4)
    best_row = df.iloc[::-1]["metrics/accuracy_top1"].idxmax()  # best.pt is rewritten on ties: last of them
    top1_best, top5_best, _ = val.run(data=str(data), weights=two_epochs["best"], batch_size=32, imgsz=32,
                                      device="cpu", workers=0, project=tmp_path, name="best")
    assert top1_best == pytest.approx(df["metrics/accuracy_top1"].iloc[best_row], abs=1e-4)
    assert top5_best == pytest.approx(df["metrics/accuracy_top5"].iloc[best_row], abs=1e-4)
    assert two_epochs["top1"] == pytest.approx(top1_best, abs=1e-4)


class Killed(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(two_epochs, data, tmp_path, monkeypatch, workers):
    """2 epochs straight == 1 epoch, a 'kill' right after its last.pt, then --resume for the 2nd epoch; with
    DataLoader workers too (the uninterrupted run had none): data order and augmentation follow (seed, epoch)."""
    real_save = trainer.save_checkpoint

    def save_then_die(ckpt, path):
        real_save(ckpt, path)
        if Path(path).name == "last.pt" and ckpt["epoch"] == 0:  # (the first last.pt is the epoch -1 one)
            raise Killed

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train.run(data=str(data), epochs=2, project=str(tmp_path), name="part", **dict(COMMON, workers=workers))
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    last = tmp_path / "part" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 0

    resumed = train.run(resume=str(last), workers=workers, device="cpu")
    assert resumed["save_dir"] == tmp_path / "part" and resumed["epochs"] == 2
    a = torch.load(two_epochs["last"], weights_only=True)
    b = torch.load(last, weights_only=True)
    for key in ("model", "ema"):
        for k, v in a[key].items():
            torch.testing.assert_close(b[key][k], v, rtol=0, atol=0, msg=f"{key}.{k}")
    assert b["updates"] == a["updates"]
    pd.testing.assert_frame_equal(read_results(resumed["save_dir"]), read_results(two_epochs["save_dir"]),
                                  rtol=1e-4)


@pytest.mark.subprocess
@pytest.mark.slow
def test_sigkill_then_resume_writes_each_epoch_once(data, tmp_path):
    epochs = 5
    project = tmp_path / "runs"
    args = [sys.executable, TRAIN, *cli_args(dict(COMMON, data=data, epochs=epochs, project=project, imgsz=64))]
    env = subprocess_env(tmp_path)
    last = project / "exp" / "weights" / "last.pt"
    signal_once_saved(args, env, last, signal.SIGKILL)
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert killed_at < epochs - 1, "the run finished before it could be killed"

    # bare --resume finds the latest last.pt under --project
    out = subprocess.run([sys.executable, TRAIN, "--resume", "--project", str(project), "--workers", "0"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    df = read_results(project / "exp")
    assert df["epoch"].tolist() == list(range(epochs))
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == epochs - 1 and ckpt["finished"] and len(ckpt["results"]) == epochs

    again = subprocess.run([sys.executable, TRAIN, "--resume", str(last)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 2 and "finished run" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.distributed
@pytest.mark.subprocess
@pytest.mark.slow
def test_ddp_two_cpu_processes(data, tmp_path, source_weights):
    """torchrun with 2 gloo processes; hrank scores computed on rank 0 and shared with rank 1."""
    project = tmp_path / "runs"
    options = dict(COMMON, data=data, epochs=2, project=project, rate=0.25, weights=source_weights,
                   criterion="hrank", rank_batches=1)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", TRAIN, *cli_args(options)]
    out = subprocess.run(cmd, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    save_dir = project / "exp"
    assert sorted(p.name for p in project.iterdir()) == ["exp"]  # both ranks used one run folder
    for f in ("weights/last.pt", "weights/best.pt", "results.csv", "results.png", "ranks.pt"):
        assert (save_dir / f).is_file(), f
    assert read_results(save_dir)["epoch"].tolist() == [0, 1]
    ckpt = torch.load(save_dir / "weights" / "last.pt", weights_only=True)
    assert ckpt["updates"] == 2 * 5  # 80 images / 2 ranks, total batch 16 → 8 per rank: 5 steps per epoch
    states = ckpt["rng"]  # each rank's own random streams, for --resume (dropout draws differ per rank)
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])


def test_each_rank_resumes_its_own_rng_state():
    from utils.distributed import gather_object
    from utils.seeds import restore_rng_state, rng_for_rank, rng_state

    torch.manual_seed(3)
    saved = gather_object(rng_state())  # without DDP: this process's state, as a one-element list
    expected = torch.rand(3)
    torch.manual_seed(4)
    restore_rng_state(rng_for_rank(saved, -1, 1))
    assert torch.equal(torch.rand(3), expected)
    per_rank = ["s0", "s1", "s2"]
    assert [rng_for_rank(per_rank, r, 3) for r in range(3)] == per_rank
    assert [rng_for_rank(per_rank, r, 2) for r in range(2)] == ["s0", None]  # other world size: rank 0's only
    assert rng_for_rank({"torch": "old"}, 0, 1) == {"torch": "old"}  # checkpoints holding rank 0's state alone


@pytest.mark.slow
def test_pruned_training_from_ranked_weights(data, tmp_path, source_weights):
    result = train.run(data=str(data), epochs=1, project=str(tmp_path), rate=0.5, weights=str(source_weights),
                       criterion="l1", **COMMON)
    assert result["parameters"] < 0.5 * result["unpruned_parameters"]
    assert result["gflops"] < result["unpruned_gflops"]
    scores, meta = load_scores(result["save_dir"] / "ranks.pt")
    assert meta["criterion"] == "l1" and meta["source"] == str(source_weights) and "model.9.conv" in scores
    model = attempt_load(result["best"])
    assert model.yaml["rate"] == [0.5] * 10 and model.model[0].conv.out_channels == 8
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)

    # the saved scores are reused with --ranks and select the same filters
    again = train.run(data=str(data), epochs=1, project=str(tmp_path), rate=0.5, weights=str(source_weights),
                      ranks=str(result["save_dir"] / "ranks.pt"), **COMMON)
    assert not (again["save_dir"] / "ranks.pt").exists()
    a, b = (torch.load(r["last"], weights_only=True)["model"] for r in (result, again))
    torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def wrong_size_weights(tmp_path_factory):
    return save_checkpoint(checkpoint_dict(ClassificationModel("yolov5s-cls.yaml", nc=10)),
                           tmp_path_factory.mktemp("wrong") / "yolov5s-src.pt")


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("extra,words", [
    (["--rate", "[0.3]*9"], ["bad rate", "got 9", "10 rates"]),
    (["--rate", "1.5"], ["bad rate", "outside [0, 1)"]),
    (["--weights", "missing-weights.pt"], ["missing-weights.pt", "not found"]),
    (["--weights", "WRONG"], ["do not match", "another model size"]),
    (["--imgsz", "0"], ["--imgsz must be ≥ 32"]),
    (["--batch-size", "0"], ["--batch-size must be ≥ 1, not 0"]),
    (["--warmup-epochs", "-1"], ["--warmup-epochs must be ≥ 0, not -1.0"]),
])
def test_cli_errors_are_one_line(data, tmp_path, wrong_size_weights, extra, words):
    extra = [str(wrong_size_weights) if a == "WRONG" else a for a in extra]
    project = tmp_path / "runs"
    args = [sys.executable, TRAIN, *cli_args(dict(COMMON, data=data, epochs=1, project=project)), *extra]
    out = subprocess.run(args, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    error_lines = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert len(error_lines) == 1 and all(w in error_lines[0] for w in words), out.stderr[-2000:]
    assert not project.exists()  # no empty run folder left behind


@pytest.mark.slow
def test_ema_tau_sets_how_closely_the_average_follows(data, tmp_path):
    """--ema-tau: YOLOv5's 2000-step ramp leaves the average at the weights after 5 steps; tau 1 averages them."""
    gaps = {}
    for tau in (2000.0, 1.0):
        last = torch.load(train.run(data=str(data), epochs=1, project=str(tmp_path), name=f"tau{tau:g}",
                                    ema_tau=tau, **COMMON)["last"], weights_only=True)
        assert last["opt"]["ema_tau"] == tau
        gaps[tau] = sum((last["ema"][k] - v).abs().sum().item() for k, v in last["model"].items()
                        if k.endswith(".weight"))
    assert gaps[1.0] > 10 * gaps[2000.0]
    with pytest.raises(ValueError, match="--ema-tau must be positive"):
        train.run(data=str(data), epochs=1, project=str(tmp_path), ema_tau=0, **COMMON)


# ------------------------------------------------------------------------------------------ helper modules
def test_ema_follows_yolov5_decay_ramp():
    from utils.ema import ModelEMA

    model = nn_linear()
    ema = ModelEMA(model, decay=0.9999, tau=2000)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    torch.testing.assert_close(ema.ema.weight, d * start + (1 - d) * model.weight.detach())
    assert not ema.ema.weight.requires_grad and not ema.ema.training
    assert ema.updates == 1


def test_ema_averages_bn_statistics_and_keeps_tracking_after_load_state_dict():
    from utils.ema import ModelEMA

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    ema = ModelEMA(model)
    ema.ema.load_state_dict({k: v + 1 for k, v in model.state_dict().items()})  # as --resume restores it
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        model[1].running_mean.add_(3.0)
    ema.update(model)
    d = ema.decay(1)
    for k, v in ema.ema.state_dict().items():
        expected = before[k] if k.endswith("num_batches_tracked") else d * before[k] + (1 - d) * model.state_dict()[k]
        torch.testing.assert_close(v, expected, msg=k)


def test_optimizer_uses_multi_tensor_kernels_on_cpu_with_the_same_step():
    from utils.optim import smart_optimizer

    models = [ClassificationModel("yolov5n-cls.yaml", nc=3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    x = torch.randn(2, 3, 32, 32)
    optimizers = [smart_optimizer(m, "SGD", lr=0.1, momentum=0.9, decay=1e-4) for m in models]
    assert optimizers[0].defaults["foreach"] is True  # torch alone would pick the per-tensor loop on CPU
    for group in optimizers[1].param_groups:
        group["foreach"] = False
    for m, opt in zip(models, optimizers):
        for _ in range(2):
            m(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)


def nn_linear():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSProp"])
def test_smart_optimizer_groups(name):
    from utils.optim import smart_optimizer

    model = ClassificationModel("yolov5n-cls.yaml", nc=3)
    opt = smart_optimizer(model, name, lr=0.01, momentum=0.9, decay=1e-4)
    biases, weights, norm = (g["params"] for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 1e-4, 0.0]
    bn_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in norm} == bn_weights
    assert all(p.ndim == 1 for p in biases) and all(p.ndim > 1 for p in weights)
    assert len(biases) + len(weights) + len(norm) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="not known"):
        smart_optimizer(model, "Lion")


@pytest.mark.parametrize("cos_lr", [False, True])
def test_lr_schedules_give_yolov5s_per_epoch_lrs(cos_lr):
    """torch's LinearLR / CosineAnnealingLR against YOLOv5 classify's lambdas, every epoch, every parameter group."""
    from utils.optim import lr_scheduler, smart_optimizer

    def yolov5(x, epochs, lrf):  # upstream's lf(x): linear, or one_cycle for --cos-lr
        if cos_lr:
            return ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1
        return (1 - x / epochs) * (1.0 - lrf) + lrf

    for epochs in (1, 2, 10, 300):
        optimizer = smart_optimizer(nn_linear(), "SGD", lr=0.01)
        scheduler = lr_scheduler(optimizer, epochs, lrf=0.01, cos_lr=cos_lr)
        for x in range(epochs + 1):
            for group in optimizer.param_groups:
                assert group["lr"] == pytest.approx(0.01 * yolov5(x, epochs, 0.01), rel=1e-12, abs=0), (epochs, x)
            optimizer.step()
            scheduler.step()


def test_early_stopping():
    from utils.metrics import EarlyStopping

    stop = EarlyStopping(patience=2)
    assert [stop(e, f) for e, f in enumerate([0.1, 0.3, 0.2, 0.3, 0.25, 0.2])] == [False] * 5 + [True]
    assert not any(EarlyStopping(patience=0)(e, 0.0) for e in range(50))


def test_get_latest_run_is_the_latest_unfinished_one(tmp_path):
    assert train.get_latest_run(tmp_path) == ""
    model = ClassificationModel("yolov5n-cls.yaml", nc=2)
    runs = {"old": (0, 3, False), "unfinished": (1, 3, False), "finished": (2, 3, True), "broken": None}
    for i, (name, state) in enumerate(runs.items()):  # written in this order: 'broken' is the newest
        f = tmp_path / name / "weights" / "last.pt"
        if state is None:
            f.parent.mkdir(parents=True)
            f.write_bytes(b"x")
        else:
            epoch, epochs, finished = state
            save_checkpoint(checkpoint_dict(model, optimizer={}, epoch=epoch, opt={"epochs": epochs},
                                            finished=finished), f)
        os.utime(f, (1000 + i, 1000 + i))
    assert train.get_latest_run(tmp_path) == str(tmp_path / "unfinished" / "weights" / "last.pt")


@pytest.mark.subprocess
@pytest.mark.slow
def test_ctrl_c_is_one_line_and_resume_finishes_every_epoch_once(data, tmp_path, two_epochs):
    """SIGINT in epoch 1 (the case that used to leave a run with only opt.yaml): one line, exit 130, last.pt intact;
    a bare --resume then picks this run, not a newer finished one, and runs each epoch once."""
    epochs = 3
    project = tmp_path / "runs"
    args = [sys.executable, TRAIN, *cli_args(dict(COMMON, data=data, epochs=epochs, project=project))]
    env = subprocess_env(tmp_path)
    last = project / "exp" / "weights" / "last.pt"
    proc, err = signal_once_saved(args, env, last, signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "\033[" not in err  # no colour in a pipe
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert sum("interrupted" in ln for ln in lines) == 1 and "interrupted at epoch" in lines[-1], err[-3000:]
    assert f"--resume {last}" in lines[-1]
    saved = torch.load(last, weights_only=True)
    assert not saved["finished"] and saved["epoch"] < epochs - 1

    finished = project / "newer-finished" / "weights" / "last.pt"
    finished.parent.mkdir(parents=True)
    finished.write_bytes(Path(two_epochs["last"]).read_bytes())  # newer than the interrupted run, but finished
    out = subprocess.run([sys.executable, TRAIN, "--resume", "--project", str(project)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"latest unfinished run is {last}" in out.stderr
    assert read_results(project / "exp")["epoch"].tolist() == list(range(epochs))
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["finished"] and [r[0] for r in ckpt["results"]] == list(range(epochs))


def test_plot_results_reads_ours_and_yolov5_padded_csv(tmp_path):
    from utils.plots import plot_results
    from utils.results import results_row, write_results

    write_results(tmp_path / "results.csv", [results_row(e, 2 - e, 2.1 - e, 0.1 * e, 0.5, 1e-3) for e in range(3)])
    assert plot_results(tmp_path / "results.csv").stat().st_size > 0
    padded = tmp_path / "yolo"
    padded.mkdir()
    header = ("%23s," * 6 % COLUMNS).rstrip(",")
    row = ("%23.5g," * 6 % (0, 1, 1, 0.5, 0.9, 0.01)).rstrip(",")
    (padded / "results.csv").write_text(f"{header}\n{row}\n")
    assert (plot_results(padded / "results.csv")).is_file()


@pytest.mark.slow
def test_upstream_flags_infer_the_architecture_from_weights(data, tmp_path):
    """YOLOv5 users pass only --model: an upstream-style classifier pickle (no YAML inside) or a detector."""
    torch.manual_seed(0)
    upstream_cls = ClassificationModel("yolov5n-cls.yaml", nc=10)
    del upstream_cls.yaml  # upstream classifiers carry no YAML
    torch.save({"model": upstream_cls.half(), "ema": None, "epoch": -1}, tmp_path / "cls.pt")
    from models.yolo import DetectionModel

    torch.save({"model": DetectionModel("yolov5n.yaml").half(), "epoch": -1}, tmp_path / "det.pt")
    options = dict(COMMON, cfg="", data=str(data), epochs=1, project=str(tmp_path))
    for source in ("cls.pt", "det.pt"):
        parsed = train.parse_opt(argv=["--model", str(tmp_path / source)])
        assert parsed.weights == str(tmp_path / source)
        result = train.run(weights=str(tmp_path / source), rate=0.25, criterion="l1", name=source, **options)
        model = attempt_load(result["best"])
        assert model.yaml["rate"] == [0.25] * 10 and model.nc == 10
        assert result["unpruned_parameters"] == sum(p.numel() for p in ClassificationModel("yolov5n-cls.yaml", nc=10).parameters())


@pytest.mark.slow
def test_fine_tuning_a_pruned_checkpoint_keeps_its_rates(data, tmp_path, source_weights):
    options = dict(COMMON, cfg="", data=str(data), epochs=1, project=str(tmp_path), criterion="l1")
    first = train.run(weights=str(source_weights), rate="[0.]+[0.5]*9", name="pruned", **options)
    again = train.run(weights=str(first["best"]), name="again", **options)  # no --cfg, no --rate
    assert attempt_load(again["best"]).yaml["rate"] == [0.0] + [0.5] * 9
    assert again["parameters"] == first["parameters"]


def test_weights_are_read_from_disk_once(data, tmp_path, source_weights, monkeypatch):
    reads = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    train.run(data=str(data), epochs=1, project=str(tmp_path), rate=0.5, weights=str(source_weights),
              criterion="hrank", rank_batches=1, **dict(COMMON, cfg=""))
    assert reads.count(str(source_weights)) == 1, reads


def test_a_pruned_checkpoint_at_its_own_rates_is_not_ranked(data, tmp_path, source_weights, monkeypatch, logs):
    from models.criteria import compute_scores
    from models.prune import load_model

    src = attempt_load(source_weights)
    pruned = load_model(ClassificationModel("yolov5n-cls.yaml", nc=10, rate=0.5), src, compute_scores(src, "l1"))
    path = save_checkpoint(checkpoint_dict(pruned), tmp_path / "pruned.pt")

    def no_ranking(*args, **kwargs):
        raise AssertionError("ranked filters that are never used")

    monkeypatch.setattr(train, "score_filters", no_ranking)
    opt = train.parse_opt(argv=["--weights", str(path), "--criterion", "hrank"])  # no --cfg, no --rate
    source = train.check_options(opt)
    model, scores, meta = train.build_model(opt, 10, data, torch.device("cpu"), 16, source)
    assert scores is None and model.yaml["rate"] == [0.5] * 10
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x), pruned.eval()(x))
    with pytest.raises(AssertionError, match="never used"):  # pruning it further still ranks
        opt = train.parse_opt(argv=["--weights", str(path), "--rate", "0.75"])
        train.build_model(opt, 10, data, torch.device("cpu"), 16, train.check_options(opt))


def test_ranks_without_weights_warns_that_they_are_ignored(data, source_weights, logs):
    opt = train.parse_opt(argv=["--cfg", "yolov5n-cls.yaml", "--rate", "0.5", "--ranks", str(source_weights)])
    train.build_model(opt, 10, data, torch.device("cpu"), 16, train.check_options(opt))
    warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert any("--ranks" in w and "ignored" in w and "from scratch" in w for w in warnings), warnings
