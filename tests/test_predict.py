"""classify/predict.py, its inputs (utils/sources.py) and the CLI plumbing it shares (utils/cli.py, utils/device.py).

Everything runs on CPU on images and videos generated into tmp_path; no network.
"""

import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from classify.predict import run
from models.experimental import attempt_load
from utils.augmentations import classify_transforms
from utils.cli import UserError, run_cli
from utils.device import select_device
from utils.sources import LoadImages, download_source, is_stream

from helpers import ROOT, make_checkpoint

IMGSZ = 64  # small inputs keep every forward pass in milliseconds


def write_images(folder, n=3, seed=0):
    """n random colour images of different sizes (one PNG) → sorted paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        im = rng.integers(0, 256, (48 + 16 * i, 80 - 8 * i, 3), dtype=np.uint8)
        p = folder / f"img{i}.{'v2.png' if i == 1 else 'jpg'}"  # a dotted stem must keep its whole name
        cv2.imwrite(str(p), im)
        paths.append(p)
    return sorted(paths)


def write_video(path, frames=7, size=(96, 80)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (30 * i, 255 - 30 * i, 90), np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "n3.pt", nc=3)


@pytest.fixture(scope="module")
def ckpt7(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "n7.pt", nc=7, rate=0.3)


def predict(weights, source, tmp_path, **kwargs):
    return run(weights=weights, source=source, imgsz=IMGSZ, project=tmp_path / "runs", device="cpu", **kwargs)


def read_txt(path):
    return [(float(p), name) for p, name in (line.split(" ", 1) for line in path.read_text().splitlines())]


# --- sources -----------------------------------------------------------------------------------------------------


def test_image_folder_and_glob(ckpt, tmp_path):
    images = write_images(tmp_path / "images", n=3)
    by_folder = predict(ckpt, tmp_path / "images", tmp_path, name="folder", save_txt=True)
    assert [r.path for r in by_folder] == [str(p) for p in images]  # sorted, one result each
    labels = sorted(p.name for p in (tmp_path / "runs" / "folder" / "labels").iterdir())
    assert labels == ["img0.txt", "img1.v2.txt", "img2.txt"]
    by_glob = predict(ckpt, tmp_path / "images" / "*.jpg", tmp_path, name="glob")
    assert [r.path for r in by_glob] == [str(p) for p in images if p.suffix == ".jpg"]
    single = predict(ckpt, images[1], tmp_path, name="single")
    assert torch.equal(single[0].logits, by_folder[1].logits)
    for p in images:  # annotated copies keep the original resolution
        saved = cv2.imread(str(tmp_path / "runs" / "folder" / p.name))
        assert saved.shape == cv2.imread(str(p)).shape


def test_txt_list_relative_to_its_folder(ckpt, tmp_path):
    images = write_images(tmp_path / "data" / "images", n=2)
    listing = tmp_path / "data" / "list.txt"
    listing.write_text("images/img1.v2.png\n\n" + str(images[0]) + "\n")
    results = predict(ckpt, listing, tmp_path, nosave=True)
    assert [Path(r.path).name for r in results] == ["img1.v2.png", "img0.jpg"]  # the list's order


def test_video_frames_with_stride(ckpt, tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=7)
    results = predict(ckpt, video, tmp_path, save_txt=True, vid_stride=2)
    assert [r.frame for r in results] == [1, 2, 3, 4]  # frames 0, 2, 4, 6 of 7
    save_dir = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in (save_dir / "labels").iterdir()) == [f"clip_{i}.txt" for i in (1, 2, 3, 4)]
    cap = cv2.VideoCapture(str(save_dir / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()
    # Frames differ in colour, so a real per-frame forward gives different outputs.
    assert not torch.equal(results[0].logits, results[-1].logits)


def test_stream_list_is_read_live(ckpt, tmp_path):
    # A .streams file goes to LoadStreams; a video file stands in for a camera (frames may be dropped, as live).
    video = write_video(tmp_path / "cam.avi", frames=5)
    (tmp_path / "cams.streams").write_text(f"{video}\n")
    results = predict(ckpt, tmp_path / "cams.streams", tmp_path, save_txt=True)
    frames = [r.frame for r in results]  # the reader thread races ahead: which frames are served is timing
    assert results and all(r.path == str(video) for r in results)
    assert frames == sorted(set(frames)) and 1 <= frames[0] and frames[-1] <= 5  # newest-first, never repeated
    assert (tmp_path / "runs" / "exp" / "labels" / f"cam_{frames[0]}.txt").is_file()
    assert (tmp_path / "runs" / "exp" / "cam.mp4").is_file()


def test_default_source_is_offline_asset(ckpt, tmp_path):
    result = predict(ckpt, None, tmp_path, nosave=True)
    assert len(result) == 1 and Path(result[0].path).name == "bus.jpg"


def test_unreadable_image_is_skipped_with_warning(ckpt, tmp_path, logs):
    images = write_images(tmp_path / "images", n=2)
    bad = tmp_path / "images" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    results = predict(ckpt, tmp_path / "images", tmp_path)
    assert [r.path for r in results] == [str(p) for p in images]
    warnings = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
    assert any(str(bad) in m and "unreadable" in m for m in warnings)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LoadImages(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="matches no files"):
        LoadImages(tmp_path / "*.jpg")
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(FileNotFoundError, match="no images or videos"):
        LoadImages(tmp_path)


def test_url_sources_download_or_fail_clearly(tmp_path):
    image = write_images(tmp_path / "src", n=1)[0]
    # file:// exercises the real download code without a network.
    local = download_source(image.as_uri(), folder=tmp_path / "cache")
    assert local.read_bytes() == image.read_bytes() and local.parent.parent == tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="could not download"):  # nothing listens on port 9
        download_source("http://127.0.0.1:9/x.jpg", folder=tmp_path / "cache")
    assert is_stream("0") and is_stream("rtsp://cam/live") and not is_stream("https://host/a/b.jpg?x=1")


# --- prediction ----------------------------------------------------------------------------------------------------


def test_logits_equal_forward_on_classify_transforms(ckpt, tmp_path):
    image = write_images(tmp_path / "images", n=1)[0]
    result = predict(ckpt, image, tmp_path, nosave=True)[0]
    model = attempt_load(ckpt)
    with torch.no_grad():
        expected = model(classify_transforms(IMGSZ)(cv2.imread(str(image)))[None])[0]
    torch.testing.assert_close(result.logits, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.probs, expected.softmax(0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("which, lines", [("ckpt", 3), ("ckpt7", 5)])
def test_save_txt_top5_format(which, lines, request, tmp_path):
    weights = request.getfixturevalue(which)
    image = write_images(tmp_path / "images", n=1)[0]
    result = predict(weights, image, tmp_path, save_txt=True)[0]
    rows = read_txt(tmp_path / "runs" / "exp" / "labels" / f"{image.stem}.txt")
    assert len(rows) == lines == len(result.top5)
    assert [p for p, _ in rows] == sorted((p for p, _ in rows), reverse=True)
    assert [name for _, name in rows] == [f"c{j}" for j in result.top5]
    assert [p for p, _ in rows] == [round(result.probs[j].item(), 2) for j in result.top5]
    assert result.top5[0] == int(result.probs.argmax())


# --- command line --------------------------------------------------------------------------------------------------


def cli(*args, cwd):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.subprocess
@pytest.mark.slow
def test_cli_missing_source_is_one_line_error(ckpt, tmp_path):
    out = cli(ROOT / "classify" / "predict.py", "--weights", ckpt, "--source", tmp_path / "missing.jpg",
              "--project", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert errors == [f"predict.py: error: source '{tmp_path / 'missing.jpg'}' does not exist"]
    assert not (tmp_path / "runs").exists()  # no empty run folder left behind


@pytest.mark.subprocess
@pytest.mark.slow
def test_top_level_predict_forwards_arguments(ckpt, tmp_path):
    image = write_images(tmp_path / "images", n=1)[0]
    out = cli(ROOT / "predict.py", "--weights", ckpt, "--source", image, "--imgsz", IMGSZ, "--save-txt",
              "--project", tmp_path / "runs", "--name", "fwd", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(read_txt(tmp_path / "runs" / "fwd" / "labels" / "img0.txt")) == 3
    assert f"img0.jpg: {IMGSZ}x{IMGSZ} c" in out.stderr + out.stdout
    assert "Results saved to" in out.stderr + out.stdout


@pytest.mark.subprocess
def test_run_cli_reports_user_errors_only(capsys):
    def fails(exc):
        def main(opt):
            raise exc
        return main

    for exc in (UserError("bad\nflag"), ValueError("bad value"), FileNotFoundError("no file")):
        with pytest.raises(SystemExit) as e:
            run_cli(fails(exc), None, prog="tool.py")
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tool.py: error: ")
    with pytest.raises(KeyError):  # a bug keeps its traceback
        run_cli(fails(KeyError("bug")), None, prog="tool.py")


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid --device"):
        select_device("gpu")
    if not torch.cuda.is_available():
        for spec in ("0", "cuda", "cuda:0"):  # torch's spellings are valid, and the error says what is missing
            with pytest.raises(ValueError, match="CUDA is not available on this machine; use --device cpu"):
                select_device(spec)


def test_select_device_twice_on_a_non_zero_gpu(monkeypatch):
    """`--device 1` narrows CUDA_VISIBLE_DEVICES before CUDA starts; a second call (prune.py: train, rank, train)
    must still find that GPU as cuda:0. CUDA is simulated: 4 GPUs, narrowed by the variable until initialised."""
    import types

    import utils.device as device_module

    state = {"initialized": False}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(device_module, "_remapped", {})
    visible = lambda: len(os.environ["CUDA_VISIBLE_DEVICES"].split(",")) if "CUDA_VISIBLE_DEVICES" in os.environ else 4
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state["initialized"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", visible)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda k: types.SimpleNamespace(name="GPU", total_memory=1 << 30))
    assert select_device("1") == torch.device("cuda:0") and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    state["initialized"] = True  # CUDA started: the variable can no longer change what torch sees
    assert select_device("1") == torch.device("cuda:0")
