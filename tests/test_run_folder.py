"""A run folder is one live run's alone, a killed write leaves nothing behind for long, and a log written to a file
stays small."""

import io
import os
import shutil
import subprocess
import sys

import pytest

from classify import train
from data.builtin import make_builtin_dataset
from models.io.checkpoints import save_checkpoint
from utils import run_lock
from utils.atomic import atomic_path

from helpers import ROOT


def a_dead_pid():
    """The PID of a process that has exited (and been reaped), so no process has it for now."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.subprocess
def test_a_live_owner_keeps_the_folder_and_a_dead_one_does_not(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / run_lock.LOCK_NAME).write_text(f"{sleeper.pid} {os.uname().nodename}")
        with pytest.raises(run_lock.RunFolderBusy, match=f"in use by process {sleeper.pid}"):
            run_lock.acquire(folder)
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = run_lock.acquire(folder)  # its owner is gone: taken over
    assert lock.read_text().split()[0] == str(os.getpid())
    assert run_lock.acquire(folder) == lock  # this process again (a command run twice from Python)
    (folder / run_lock.LOCK_NAME).write_text("1 some-other-host")  # liveness cannot be checked there: held
    with pytest.raises(run_lock.RunFolderBusy, match="on some-other-host"):
        run_lock.check_free(folder)
    run_lock.release(folder)  # not ours: left alone
    assert (folder / run_lock.LOCK_NAME).exists()


@pytest.mark.subprocess
@pytest.mark.slow
def test_training_into_a_busy_folder_is_one_line_before_any_work(tmp_path):
    data = make_builtin_dataset(tmp_path / "tiny", n_train=2, n_val=1, size=32)
    folder = tmp_path / "runs" / "exp"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (folder / run_lock.LOCK_NAME).write_text(f"{sleeper.pid} {os.uname().nodename}")
        res = subprocess.run([sys.executable, "classify/train.py", "--cfg", "yolov5n-cls.yaml", "--data", str(data),
                              "--img", "32", "--epochs", "1", "--workers", "0", "--project", str(tmp_path / "runs"),
                              "--name", "exp", "--exist-ok"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"run folder {folder} is in use by process {sleeper.pid}" in res.stderr
    assert sorted(p.name for p in folder.iterdir()) == [run_lock.LOCK_NAME]  # nothing written into it


def test_a_finished_run_releases_its_folder_and_warns_about_one_class(tmp_path, logs):
    data = make_builtin_dataset(tmp_path / "tiny", n_train=4, n_val=2, size=32)
    for split in ("train", "val"):  # keep one class folder only
        for d in (data / split).iterdir():
            if d.name != "dots":
                shutil.rmtree(d)
    out = train.run(cfg="yolov5n-cls.yaml", data=str(data), imgsz=32, epochs=1, batch_size=4, workers=0,
                    device="cpu", project=tmp_path / "runs", name="one")
    assert not (out["save_dir"] / run_lock.LOCK_NAME).exists()
    assert any("has one class folder (dots)" in r.getMessage() for r in logs.records)


@pytest.mark.subprocess
def test_temp_files_of_killed_writes_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "last.pt"
    stale = tmp_path / f".last.pt.{a_dead_pid()}.abc123.tmp"  # SIGKILL mid-write: the temp stays behind
    legacy = tmp_path / ".last.pt.xyz789.tmp"  # written before temps carried their writer's PID
    live = tmp_path / f".last.pt.{os.getppid()}.def456.tmp"  # a live writer's: must survive
    other = tmp_path / f".best.pt.{a_dead_pid()}.ghi.tmp"  # another file's: not this write's business
    for p in (stale, legacy, live, other):
        p.write_bytes(b"")
    save_checkpoint({"epoch": 1}, target)
    assert target.is_file() and not stale.exists() and not legacy.exists()
    assert live.exists() and other.exists()
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f".last.pt.{os.getpid()}.")
        tmp.write_bytes(b"x")


def test_progress_bars_are_off_when_not_a_terminal(monkeypatch):
    import utils.log as log

    stream = io.StringIO()  # isatty() is False, as for a log file
    monkeypatch.setattr(log.sys, "stderr", stream)
    bar = log.progress_bar(range(500), file=stream, total=500)
    bar.desc = "kept for the caller's own line"
    assert sum(bar) == sum(range(500)) and stream.getvalue() == "" and bar.desc.startswith("kept")
    monkeypatch.setattr(log.sys, "stderr", type("Terminal", (), {"isatty": staticmethod(lambda: True)})())
    assert not log.progress_bar(range(3), file=stream).disable


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_training_log_written_to_a_file_stays_small(tmp_path):
    data = make_builtin_dataset(tmp_path / "tiny", n_train=20, n_val=4, size=32)
    log_file = tmp_path / "train.log"
    with open(log_file, "w") as f:
        res = subprocess.run([sys.executable, "classify/train.py", "--cfg", "yolov5n-cls.yaml", "--data", str(data),
                              "--img", "32", "--epochs", "3", "--batch-size", "8", "--workers", "0", "--project",
                              str(tmp_path / "runs")], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=300)
    log = log_file.read_bytes()  # bytes: text mode would turn each carriage return into a newline
    assert res.returncode == 0, log.decode()
    assert b"\r" not in log  # no progress-bar redraws
    rows = [line.split() for line in log.decode().splitlines() if line.strip().startswith(("1/3", "2/3", "3/3"))]
    assert [r[0] for r in rows] == ["1/3", "2/3", "3/3"] and all(len(r) == 6 for r in rows)  # one row per epoch
