"""Weights downloads from YOLOv5's GitHub release assets (real code; offline it fails with a clear message)."""

from pathlib import Path

from utils.log import LOGGER
from utils.paths import WEIGHTS_DIR

RELEASE_URL = "https://github.com/ultralytics/yolov5/releases/download/v7.0"
RELEASE_ASSETS = {f"yolov5{size}{suffix}.pt" for size in "nsmlx" for suffix in ("", "6", "-cls", "-seg")}


def attempt_download(file, release_url=RELEASE_URL):
    """Return a local path for `file`, downloading a known YOLOv5 release asset when it is missing.

    Looks at the given path, then under weights/. Unknown names that do not exist raise FileNotFoundError.
    """
    path = Path(str(file).strip().replace("'", ""))
    if path.is_file():
        return path
    local = WEIGHTS_DIR / path.name
    if local.is_file():
        return local
    if path.name not in RELEASE_ASSETS:
        raise FileNotFoundError(f"weights '{file}' not found (looked in ./ and {WEIGHTS_DIR})")
    url = f"{release_url}/{path.name}"
    target = path if path.parent != Path(".") else local
    LOGGER.info(f"Downloading {url} to {target}...")
    try:
        from ultralytics.utils.downloads import safe_download

        safe_download(url=url, file=target, retry=1, min_bytes=1e5, progress=True)
    except Exception as e:  # network errors come in many types; all mean the same to the user
        raise FileNotFoundError(f"weights '{file}' not found and download of {url} failed ({type(e).__name__}); "
                                f"download it by hand into {WEIGHTS_DIR}/") from None
    if not target.is_file():
        raise FileNotFoundError(f"weights '{file}' not found and download of {url} failed; "
                                f"download it by hand into {WEIGHTS_DIR}/")
    return target
