"""A real, offline image set: scikit-learn's handwritten digits (1,797 scans, 10 classes) as an ImageFolder.

The 8x8 scans (values 0-16) are scaled to 0-255 and resized to `size` pixels (bilinear), then split into
train (1,438) and val (359) with a fixed stratified split, so every run and every machine sees the same
images. Used by the accuracy benchmarks; `--data digits` works anywhere scikit-learn is installed.
"""

from pathlib import Path

import cv2
import numpy as np

from data.folders import has_stamp, write_stamped_folder

DIGITS_NAME = "digits"
DIGITS_VERSION = "1"  # bump when the conversion changes, so stale copies are regenerated
VERSION_FILE = ".digits_version"
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    return d.images, d.target


def _split(targets):
    """Stratified split: per class, a seeded permutation; the first VAL_FRACTION go to val."""
    rng = np.random.default_rng(SPLIT_SEED)
    val = np.zeros(len(targets), bool)
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        val[idx[: round(len(idx) * VAL_FRACTION)]] = True
    return val


def make_digits_dataset(root, size=32):
    """Write root/{train,val}/<digit>/*.png (built in a temporary sibling, renamed into place) and return root."""
    root = Path(root)
    images, targets = _load_digits()
    is_val = _split(targets)

    def write(tmp):
        for k, (im, c, v) in enumerate(zip(images, targets, is_val)):
            folder = tmp / ("val" if v else "train") / str(c)
            folder.mkdir(parents=True, exist_ok=True)
            im = cv2.resize((im * (255 / 16)).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(folder / f"{k:04d}.png"), np.clip(im + 0.5, 0, 255).astype(np.uint8))

    return write_stamped_folder(root, write, VERSION_FILE, f"{DIGITS_VERSION} {size}")


def is_current(root):
    """True when root holds a complete dataset written by this conversion version."""
    return has_stamp(root, VERSION_FILE, DIGITS_VERSION)
