"""Prediction inputs: images, folders, globs, .txt lists, videos, http(s) files and live streams.

Every loader yields YOLOv5's 5-tuple `(path, tensor, original_bgr, video_capture_or_None, info)`, where
tensor is the transformed (3, H, W) image and info the `image 1/3 /path/x.jpg: ` prefix of the log line.
"""

import glob
import hashlib
import os
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import cv2
import numpy as np

from utils.augmentations import classify_transforms
from utils.downloads import download_file
from utils.log import LOGGER

IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm")  # as YOLOv5
VID_FORMATS = ("asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv", "webm")
STREAM_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://")
# Downloaded URL sources land here; override with YOLOV5_SOURCES_DIR.
DOWNLOAD_DIR = Path(os.getenv("YOLOV5_SOURCES_DIR", Path(tempfile.gettempdir()) / "yolov5-prune-sources"))


def _suffix(path):
    return Path(str(path)).suffix[1:].lower()


def is_url(source):
    return str(source).lower().startswith(STREAM_SCHEMES)


def url_file_name(url):
    """The file name in a URL's path ('https://x.org/a/b.jpg?s=1' → 'b.jpg')."""
    return Path(urllib.parse.unquote(urllib.parse.urlparse(str(url)).path)).name


def is_stream(source):
    """A webcam index ('0'), a .streams list, or a URL that is not a plain image/video file (rtsp, mjpeg, ...)."""
    s = str(source)
    if s.isnumeric() or s.endswith(".streams"):
        return True
    return is_url(s) and _suffix(url_file_name(s)) not in IMG_FORMATS + VID_FORMATS


def download_source(url, folder=DOWNLOAD_DIR):
    """Download an http(s) image/video once into `folder` and return its local path.

    Offline or a bad URL raises FileNotFoundError with a one-line reason.
    """
    name = url_file_name(url)
    # One sub-folder per URL, so two URLs ending in the same file name never overwrite each other.
    target = Path(folder) / hashlib.sha1(str(url).encode()).hexdigest()[:10] / name
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    LOGGER.info(f"Downloading {url} to {target}...")
    try:
        download_file(str(url), target, progress=False)
    except Exception as e:  # URLError, HTTPError, timeouts, ...: all mean the same to the user
        reason = " ".join(str(getattr(e, "reason", e)).split())[:200]
        raise FileNotFoundError(f"could not download source {url} ({type(e).__name__}: {reason}); "
                                f"check the URL and network, or download it and pass the local path") from None
    return target


def _source_files(source):
    """Image/video paths for one source string: file, folder (sorted), glob (sorted), .txt list or URL."""
    s = str(source)
    if is_url(s):
        return [str(download_source(s))]
    path = Path(s).expanduser()
    if not path.exists() and any(c in s for c in "*?["):
        found = sorted(glob.glob(str(path), recursive=True))
        if not found:
            raise FileNotFoundError(f"source '{s}' matches no files")
        return found
    if path.is_dir():
        return sorted(str(p) for p in path.iterdir() if p.is_file())
    if path.is_file() and path.suffix.lower() == ".txt":
        # One path per line; relative ones are relative to the list's folder, so the list can move with its data.
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        entries = [ln if Path(ln).is_absolute() or is_url(ln) else path.parent / ln for ln in lines]
        return [f for entry in entries for f in _source_files(entry)]
    if path.is_file():
        return [str(path)]
    raise FileNotFoundError(f"source '{s}' does not exist")


def imread(path):
    """BGR uint8 image, or None when the file is not a readable image (also for non-ASCII paths)."""
    try:
        buf = np.fromfile(str(path), np.uint8)
        return cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    except (OSError, cv2.error):
        return None


class LoadImages:
    """Iterate images and video frames from a file, folder, glob, .txt list or http(s) URL (or a list of them).

    Unreadable images and videos are skipped with a warning naming the file (listed in `.skipped`).
    Videos yield every vid_stride-th frame; `.mode` is 'image' or 'video' and `.frame` the frame number.
    """

    def __init__(self, path, img_size=224, transforms=None, vid_stride=1):
        sources = path if isinstance(path, (list, tuple)) else [path]
        files = [f for s in sources for f in _source_files(s)]
        images = [f for f in files if _suffix(f) in IMG_FORMATS]
        videos = [f for f in files if _suffix(f) in VID_FORMATS]
        if not images and not videos:
            raise FileNotFoundError(f"no images or videos found in {', '.join(map(str, sources))}; supported formats "
                                    f"are images {', '.join(IMG_FORMATS)} and videos {', '.join(VID_FORMATS)}")
        if vid_stride < 1:
            raise ValueError(f"--vid-stride must be >= 1, not {vid_stride}")
        self.files = images + videos
        self.video_flag = [False] * len(images) + [True] * len(videos)
        self.nf = len(self.files)
        self.img_size = img_size
        self.transforms = transforms or classify_transforms(img_size)
        self.vid_stride = vid_stride
        self.skipped = []
        self.mode = "image"
        self.cap, self.frame, self.frames = None, 0, 0

    def __len__(self):
        return self.nf

    def __iter__(self):
        self.count = 0
        return self

    def __next__(self):
        while self.count < self.nf:
            path = self.files[self.count]
            if self.video_flag[self.count]:
                item = self._next_frame(path)
                if item is not None:
                    return item
            else:
                self.count += 1
                self.mode = "image"
                im0 = imread(path)
                if im0 is not None:
                    return path, self.transforms(im0), im0, None, f"image {self.count}/{self.nf} {path}: "
                self._skip(path, "image")
        raise StopIteration

    def _next_frame(self, path):
        """The next kept frame of the current video, or None once it is finished (count moves on)."""
        if self.cap is None:
            self._open_video(path)
            if self.cap is None:
                self.count += 1
                return None
        ok, im0 = self.cap.read()
        if not ok:
            if self.frame == 0:
                self._skip(path, "video")
            self.cap.release()
            self.cap = None
            self.count += 1
            return None
        for _ in range(self.vid_stride - 1):  # skip the frames between kept ones without decoding them
            self.cap.grab()
        self.frame += 1
        info = f"video {self.count + 1}/{self.nf} ({self.frame}/{self.frames}) {path}: "
        return path, self.transforms(im0), im0, self.cap, info

    def _open_video(self, path):
        self.mode = "video"
        self.frame = 0
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            self._skip(path, "video")
            return
        self.cap = cap
        self.frames = -(-int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) // self.vid_stride)  # frames that will be kept

    def _skip(self, path, kind):
        self.skipped.append(path)
        article = "an" if kind == "image" else "a"
        LOGGER.warning(f"WARNING ⚠️ skipping unreadable {kind} {path} (corrupt, or not {article} {kind})")


class LoadStreams:
    """Live frames from webcams ('0'), stream URLs (rtsp/rtmp/http) or a `.streams` file listing them.

    One reader thread per stream keeps only its newest frame, so inference always sees the present rather
    than a backlog. Yields the same 5-tuple as LoadImages, cycling through the streams.
    """

    def __init__(self, sources="0", img_size=224, transforms=None, vid_stride=1):
        s = str(sources)
        names = Path(s).read_text().split() if s.endswith(".streams") and Path(s).is_file() else [s]
        self.sources = names
        self.transforms = transforms or classify_transforms(img_size)
        self.vid_stride = max(int(vid_stride), 1)
        self.mode = "stream"
        self.frame = 0
        self.caps, self.frames, self.fps, self.threads = [], [], [], []
        self._lock = threading.Lock()
        self._latest = [None] * len(names)  # (frame number, image) per stream
        self._served = [0] * len(names)
        for i, name in enumerate(names):
            cap = cv2.VideoCapture(int(name) if name.isnumeric() else name)
            if not cap.isOpened():
                raise FileNotFoundError(f"failed to open stream '{name}'")
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps.append(fps if fps and fps == fps and fps < 1000 else 30)  # NaN/0/absurd → 30
            self.caps.append(cap)
            ok, im = cap.read()
            if not ok:
                raise FileNotFoundError(f"stream '{name}' opened but gave no frame")
            self._latest[i] = (1, im)
            t = threading.Thread(target=self._reader, args=(i, cap), daemon=True)
            t.start()
            self.threads.append(t)
            LOGGER.info(f"{i + 1}/{len(names)}: {name}... success "
                        f"({im.shape[1]}x{im.shape[0]} at {self.fps[i]:.2f} FPS)")

    def _reader(self, i, cap):
        n = 1
        while cap.isOpened():
            if not cap.grab():
                break
            n += 1
            if n % self.vid_stride == 0:
                ok, im = cap.retrieve()
                if not ok:
                    break
                with self._lock:
                    self._latest[i] = (n, im)
        LOGGER.warning(f"WARNING ⚠️ stream '{self.sources[i]}' ended")

    def __len__(self):
        return len(self.sources)

    def __iter__(self):
        self._next = 0
        return self

    def __next__(self):
        for _ in range(len(self.sources)):
            i, self._next = self._next, (self._next + 1) % len(self.sources)
            while True:  # wait for a frame newer than the one already served, unless the stream has ended
                with self._lock:
                    n, im = self._latest[i]
                if n > self._served[i] or not self.threads[i].is_alive():
                    break
                time.sleep(1 / self.fps[i] / 4)
            if n > self._served[i]:
                self._served[i] = n
                self.frame = n
                return self.sources[i], self.transforms(im), im.copy(), None, f"{i}: "
        raise StopIteration

    def close(self):
        for cap in self.caps:
            cap.release()


def load_source(source, img_size=224, transforms=None, vid_stride=1):
    """The loader for a --source string: LoadStreams for webcams/streams, LoadImages for everything else."""
    loader = LoadStreams if is_stream(source) else LoadImages
    return loader(source, img_size=img_size, transforms=transforms, vid_stride=vid_stride)
