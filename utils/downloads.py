"""Downloads: one streaming file downloader (weights, datasets, prediction sources) and released weights: YOLOv5's,
and ultralytics' YOLOv8/YOLO11/YOLO26 (classifiers and the detectors whose backbones feed them).

Real network code; offline it fails fast with a clear message (every read has a timeout).
"""

import os
import urllib.request
from pathlib import Path

from tqdm import tqdm

from utils.log import LOGGER
from utils.paths import WEIGHTS_DIR

RELEASE_URL = "https://github.com/ultralytics/yolov5/releases/download/v7.0"
TIMEOUT_S = 30  # per network read, so a dead connection fails instead of hanging
RELEASE_ASSETS = {f"yolov5{size}{suffix}.pt" for size in "nsmlx" for suffix in ("", "6", "-cls", "-seg")}
ULTRALYTICS_RELEASE_URL = "https://github.com/ultralytics/assets/releases/download/v8.4.0"  # as ultralytics fetches them
ULTRALYTICS_ASSETS = {f"{family}{size}{suffix}.pt" for family in ("yolov8", "yolo11", "yolo26") for size in "nsmlx"
                      for suffix in ("", "-cls", "-seg", "-pose", "-obb")}


def download_file(url, dst, progress=True):
    """Stream url to dst via a temporary file beside it, so an interrupted download never looks complete.

    Raises urllib.error.URLError / OSError / ValueError; callers turn them into their own one-line message.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r, open(part, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {dst.name}", disable=not progress) as bar:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return dst


def attempt_download(file, release_url=None):
    """Return a local path for `file`, downloading a known YOLOv5 or ultralytics release asset when it is missing
    (from `release_url`, default: the asset's own release page).

    Looks at the given path, then under weights/. Unknown names that do not exist raise FileNotFoundError.
    """
    path = Path(str(file).strip().replace("'", ""))
    if path.is_file():
        return path
    local = WEIGHTS_DIR / path.name
    if local.is_file():
        return local
    if path.name not in RELEASE_ASSETS | ULTRALYTICS_ASSETS:
        raise FileNotFoundError(f"weights '{file}' not found (looked in ./ and {WEIGHTS_DIR})")
    release_url = release_url or (RELEASE_URL if path.name in RELEASE_ASSETS else ULTRALYTICS_RELEASE_URL)
    url = f"{release_url}/{path.name}"
    target = path if path.parent != Path(".") else local
    LOGGER.info(f"Downloading {url} to {target}...")
    try:
        download_file(url, target)
    except Exception as e:  # network errors come in many types; all mean the same to the user
        raise FileNotFoundError(f"weights '{file}' not found and download of {url} failed ({type(e).__name__}); "
                                f"download it by hand into {WEIGHTS_DIR}/") from None
    if not target.is_file():
        raise FileNotFoundError(f"weights '{file}' not found and download of {url} failed; "
                                f"download it by hand into {WEIGHTS_DIR}/")
    return target
