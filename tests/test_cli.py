"""Bad input in every entry point: one line on stderr, exit status 2, no traceback, no run folder left behind.

Run in-process through each script's own parse_opt() and run_cli(main, ...), the same path `python script.py` takes.
"""

import subprocess
import sys

import pytest
import torch

import export
from classify import predict, prune, rank, sensitivity, train, val
from data.builtin import make_builtin_dataset
from utils.cli import UserError, check_at_least, check_img_size

from helpers import ROOT, make_checkpoint

ENTRY_POINTS = {"train": train, "val": val, "predict": predict, "export": export, "rank": rank, "prune": prune,
                "sensitivity": sensitivity}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "empty.pt").write_bytes(b"")
    (d / "text.pt").write_text("top1 0.91, top5 0.99\nthis is a text file renamed .pt\n")
    return {"empty": d / "empty.pt", "text": d / "text.pt", "good": make_checkpoint(d / "good.pt", nc=10),
            "data": make_builtin_dataset(d / "tiny", n_train=2, n_val=1, size=32)}


def cli(module, args, capsys, monkeypatch):
    """(exit status, stderr) of `python <module>.py args`, run in-process."""
    from utils.cli import run_cli

    monkeypatch.setattr(sys, "argv", [f"{module.__name__.split('.')[-1]}.py", *args])
    with pytest.raises(SystemExit) as e:
        run_cli(module.main, module.parse_opt())
    return e.value.code, capsys.readouterr().err


def bad_input_cases():
    common = ["--device", "cpu"]
    runs = ["--project", "PROJECT"]
    cases = []
    for kind in ("empty", "text"):
        cases += [("train", ["--weights", kind, "--epochs", "1", *runs]),
                  ("train", ["--resume", kind]),
                  ("train", ["--weights", "good", "--rate", "0.5", "--ranks", kind, "--data", "data", "--img", "32",
                             "--workers", "0", *runs]),
                  ("val", ["--weights", kind, *runs]), ("predict", ["--weights", kind, *runs]),
                  ("export", ["--weights", kind]), ("rank", ["--weights", kind, "--criterion", "l1", "--output", "OUT"]),
                  ("prune", ["--weights", kind, *runs])]
    cases = [(entry, args + common, "checkpoint") for entry, args in cases]
    project = {"train": runs, "val": runs, "predict": runs, "prune": runs}  # export and rank write no run folder
    for entry in ("train", "val", "predict", "export", "rank", "prune"):
        cases.append((entry, ["--imgsz", "0", "--weights", "good", *project.get(entry, [])] + common,
                      "--imgsz must be ≥ 32"))
    for entry in ("train", "val", "export", "rank", "prune"):
        cases.append((entry, ["--batch-size", "0", "--weights", "good", *project.get(entry, [])] + common,
                      "--batch-size must be ≥ 1, not 0"))
    for entry in ("train", "val", "rank", "prune"):
        cases.append((entry, ["--workers", "-1", "--weights", "good", *project.get(entry, [])] + common,
                      "--workers must be ≥ 0, not -1"))
    return [pytest.param(*c, id=f"{c[0]}-{'-'.join(a.strip('-') for a in c[1][:2])}") for c in cases]


@pytest.mark.parametrize("entry,args,words", bad_input_cases())
def test_bad_input_is_one_line_and_exit_2(entry, args, words, files, tmp_path, capsys, monkeypatch):
    names = {**{k: str(v) for k, v in files.items()}, "PROJECT": str(tmp_path / "runs"),
             "OUT": str(tmp_path / "runs" / "ranks.pt")}
    args = [names.get(a, a) for a in args]
    status, err = cli(ENTRY_POINTS[entry], args, capsys, monkeypatch)
    assert status == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], err
    if words == "checkpoint":  # the file is named, and what is wrong with it
        assert any(str(files[k]) in errors[0] for k in ("empty", "text")), errors[0]
        assert "is empty" in errors[0] or "not a readable PyTorch checkpoint" in errors[0]
    assert not (tmp_path / "runs").exists()  # no empty run folder left behind


def test_image_sizes_follow_yolov5s_rule(logs):
    assert check_img_size(224) == 224 and check_img_size([64, 96]) == [64, 96]
    assert check_img_size(50) == 64 and check_img_size(1) == 32 and check_img_size([33, 64]) == [64, 64]
    assert sum("updating to 64" in r.getMessage() for r in logs.records) == 1
    for bad in (0, -32, [64, 0]):
        with pytest.raises(UserError, match="must be ≥ 32 pixels and a multiple of 32"):
            check_img_size(bad)
    assert check_at_least("--workers", 0, 0) == 0


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_help_shows_defaults(entry, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"{entry}.py", "--help"])
    with pytest.raises(SystemExit) as e:
        ENTRY_POINTS[entry].parse_opt()
    out = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0 and "(default: " in out
    # defaults that say nothing are not printed, nor a second default where the help names one already
    assert "(default: None)" not in out and "(default: )" not in out and "(default: False)" not in out
    if entry in ("train", "prune"):  # the training commands have a fixed size; the others run at the model's own
        assert "(default: 224)" in out or "(default: 64)" in out or "else 64" in out
    else:
        assert "default: the model's training size, else 224" in out
    if entry == "train":
        assert "'ram' (default)" not in out and "None = no cache" in out


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    import utils.log as log

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(log.sys, "stderr", Stream(True))
    assert log.colorstr("x") == "\033[34m\033[1mx\033[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert log.colorstr("x") == "x"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(log.sys, "stderr", Stream(False))  # redirected to a file
    assert log.colorstr("bold", "x") == "x"


def test_nested_commands_are_quiet_and_the_device_is_named_once(logs, monkeypatch):
    import utils.device
    from utils.cli import print_args
    from utils.device import select_device
    from utils.log import nested

    with nested():
        print_args({"epochs": 3})
    assert not logs.records
    print_args({"epochs": 3})
    assert [r.getMessage().split(": ", 1)[-1] for r in logs.records] == ["epochs=3"]
    monkeypatch.setattr(utils.device, "_announced", set())  # as in a fresh process
    for _ in range(3):
        select_device("cpu")
    assert sum("torch-" in r.getMessage() for r in logs.records) == 1


def test_files_written_atomically_keep_the_umask_mode(tmp_path):
    """Checkpoints and CSVs get the mode open() gives (results.png's), not mkstemp's private 0600."""
    import os

    from utils.atomic import write_text_atomic
    from models.io.checkpoints import save_checkpoint

    save_checkpoint({"a": 1}, tmp_path / "last.pt")
    write_text_atomic(tmp_path / "results.csv", "epoch\n")
    (tmp_path / "plain.txt").write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("last.pt", "results.csv", "plain.txt"), 0o666 & ~mask)


@pytest.mark.subprocess
@pytest.mark.slow
def test_ctrl_c_inside_a_constructor_leaves_no_destructor_traceback():
    """A Ctrl-C can hit a half-built object (tqdm's bar in its __init__); its failing __del__ must stay quiet."""
    code = """
import subprocess
import sys
from utils.cli import run_cli

class HalfBuilt:
    def __init__(self):
        raise KeyboardInterrupt  # interrupted before its attributes exist
    def __del__(self):
        self.pos  # AttributeError, reported by Python as 'Exception ignored in ...' unless silenced

def main(opt):
    HalfBuilt()

run_cli(main, None, prog="x.py")
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 130 and res.stderr.strip() == "x.py: interrupted", res.stderr


@pytest.fixture
def read_only_dir(tmp_path):
    """A real folder no file can be made in, holding a checkpoint: chmod where permission bits bind (not root),
    else the immutable attribute (root; chattr needs CAP_LINUX_IMMUTABLE)."""
    d = tmp_path / "ro"
    d.mkdir()
    make_checkpoint(d / "m.pt", nc=10)

    def blocked():
        try:
            (d / "probe").touch()
        except OSError:
            return True
        (d / "probe").unlink()
        return False

    d.chmod(0o555)
    undo = lambda: d.chmod(0o755)  # noqa: E731
    if not blocked():
        d.chmod(0o755)
        res = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
        undo = lambda: subprocess.run(["chattr", "-i", str(d)], capture_output=True)  # noqa: E731
        if res.returncode or not blocked():
            pytest.skip("no way to make a read-only folder here (root without CAP_LINUX_IMMUTABLE)")
    yield d
    undo()


def output_cases():
    """(entry, args) writing under RO: a run folder (--project), rank's --output, export's files beside --weights."""
    runs = ["--project", "RO/runs", "--weights", "RO/m.pt", "--device", "cpu"]
    return [("train", ["--epochs", "1", "--data", "DATA", "--img", "32", *runs]), ("val", ["--data", "DATA", *runs]),
            ("predict", ["--source", "DATA", *runs]), ("prune", ["--data", "DATA", *runs]),
            ("sensitivity", ["--data", "DATA", *runs]),
            ("rank", ["--weights", "RO/m.pt", "--criterion", "l1", "--output", "RO/ranks.pt"]),
            ("export", ["--weights", "RO/m.pt", "--include", "onnx"])]


@pytest.mark.subprocess
@pytest.mark.parametrize("entry,args", output_cases(), ids=[c[0] for c in output_cases()])
def test_an_unwritable_output_is_one_line_before_any_work(entry, args, read_only_dir, files, capsys, monkeypatch):
    args = [a.replace("RO", str(read_only_dir)).replace("DATA", str(files["data"])) for a in args]
    status, err = cli(ENTRY_POINTS[entry], args, capsys, monkeypatch)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == 2 and "Traceback" not in err and len(errors) == 1, err
    assert f"cannot write in '{read_only_dir}'" in errors[0]
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["m.pt"]


@pytest.mark.parametrize("entry", ["train", "val", "predict", "prune", "sensitivity"])
def test_a_project_that_is_a_file_is_one_line(entry, files, tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("x")
    args = ["--project", str(tmp_path / "notes.txt"), "--weights", str(files["good"]), "--data", str(files["data"]),
            "--device", "cpu"]
    status, err = cli(ENTRY_POINTS[entry], args, capsys, monkeypatch)
    assert status == 2 and "Traceback" not in err and "notes.txt' is a file, not a folder" in err, err


def probe_cases():
    """(entry, args, words): the faults a new user met that ended in a traceback or in work before the check."""
    runs = ["--project", "PROJECT", "--device", "cpu"]
    where = {"export": ["--device", "cpu"], "rank": ["--output", "OUT", "--device", "cpu"]}
    return [*[(e, ["--imgsz", "100000", "--weights", "good", *where.get(e, runs)], "above the 4096-pixel limit")
              for e in ("train", "val", "predict", "export", "rank", "prune")],
            ("train", ["--cfg", "BADYAML", "--epochs", "1", *runs], "is not valid YAML (line 2"),
            ("prune", ["--cfg", "BADYAML", *runs], "is not valid YAML (line 2"),
            ("train", ["--cfg", "NOTES", "--epochs", "1", *runs], "has no 'backbone:' list"),
            ("export", ["--weights", "DETECTOR", "--include", "onnx", "--device", "cpu"], "needs a trained classifier"),
            ("export", ["--weights", "good", "--include", "onnx", "--opset", "3", "--device", "cpu"],
             "--opset 3: torch"),
            ("prune", ["--target-flops", "1e-9", "--data", "data", *runs], "--target-flops 1e-09 is out of reach"),
            ("train", ["--weights", "good", "--target-flops", "1e-9", "--data", "data", *runs],
             "--target-flops 1e-09 is out of reach"),
            ("rank", ["--weights", "good", "--target-flops", "1e-9", "--criterion", "l1", "--output", "OUT"],
             "--target-flops 1e-09 is out of reach"),
            ("rank", ["--weights", "good", "--target-flops", "0.5", "--sensitivity", "NOTES", "--output", "OUT"],
             "is not a sensitivity table"),
            ("train", ["--device", "cuda", "--weights", "good", "--project", "PROJECT"], "CUDA is not available")]


@pytest.mark.parametrize("entry,args,words", probe_cases(),
                         ids=[f"{c[0]}-{c[1][0].strip('-')}-{c[1][1]}" for c in probe_cases()])
def test_probes_are_one_line_before_any_work(entry, args, words, files, tmp_path, capsys, monkeypatch):
    if "cuda" in args and __import__("torch").cuda.is_available():
        pytest.skip("a CUDA machine: --device cuda is valid there")
    (tmp_path / "bad.yaml").write_text("backbone: [[-1, 1, Conv, [64, 6, 2, 2]]\nhead: {a: b")
    (tmp_path / "notes.txt").write_text("my notes, not a table\n")
    from models.yolo import DetectionModel

    detector = tmp_path / "det.pt"
    torch.save({"model": DetectionModel("yolov5n.yaml"), "ema": None, "epoch": -1}, detector)  # upstream-style
    names = {**{k: str(v) for k, v in files.items()}, "PROJECT": str(tmp_path / "runs"), "OUT": str(tmp_path / "o.pt"),
             "BADYAML": str(tmp_path / "bad.yaml"), "NOTES": str(tmp_path / "notes.txt"), "DETECTOR": str(detector)}
    status, err = cli(ENTRY_POINTS[entry], [names.get(a, a) for a in args], capsys, monkeypatch)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == 2 and "Traceback" not in err and len(errors) == 1 and words in errors[0], err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o.pt").exists()
    assert not list(tmp_path.glob("det*.onnx"))
