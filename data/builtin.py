"""The built-in offline dataset: 10 texture/shape classes drawn with cv2, deterministic for a given seed.

Each class is a pattern that fills the image (so random crops and flips keep the label) drawn with random
period, phase, thickness, colours and noise, so a classifier must learn spatial features, not mean colour.
Horizontal/vertical flips never turn one class into another.
"""

from pathlib import Path

import cv2
import numpy as np

from data.folders import has_stamp, write_stamped_folder

BUILTIN_NAME = "builtin10"
BUILTIN_VERSION = "1"  # bump when the generator changes, so stale copies are regenerated
VERSION_FILE = ".builtin_version"
SPLITS = {"train": 0, "val": 1}  # split id feeds the RNG, so train and val never share an image


def _colours(rng):
    """Background and foreground BGR colours that differ clearly in brightness."""
    while True:
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if abs(int(bg.mean()) - int(fg.mean())) > 35:
            return tuple(int(c) for c in bg), tuple(int(c) for c in fg)


def _stripes(rng, size, angle_deg):
    """Binary mask of parallel stripes at angle_deg (0 = horizontal lines)."""
    period = rng.uniform(6, 14)
    duty = rng.uniform(0.3, 0.6)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    a = np.deg2rad(angle_deg)
    d = -x * np.sin(a) + y * np.cos(a) + rng.uniform(0, period)
    return (d % period) < duty * period


def _hstripes(rng, size):
    return _stripes(rng, size, rng.uniform(-12, 12))


def _vstripes(rng, size):
    return _stripes(rng, size, 90 + rng.uniform(-12, 12))


def _diagonal(rng, size):
    return _stripes(rng, size, rng.choice([45, 135]) + rng.uniform(-10, 10))


def _checkerboard(rng, size):
    cell = rng.uniform(5, 12)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    ox, oy = rng.uniform(0, 2 * cell, 2)
    return ((np.floor((x + ox) / cell) + np.floor((y + oy) / cell)) % 2).astype(bool)


def _rings(rng, size):
    period = rng.uniform(6, 12)
    cy, cx = rng.uniform(0, size, 2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    return (r % period) < rng.uniform(0.35, 0.55) * period


def _grid_lines(rng, size):
    """Thin lines in both directions (graph paper)."""
    cell = rng.uniform(8, 14)
    width = rng.uniform(1.2, 2.5)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    ox, oy = rng.uniform(0, cell, 2)
    return (((x + ox) % cell) < width) | (((y + oy) % cell) < width)


def _scatter(rng, size, draw_one):
    """Objects on a jittered lattice, so every part of the image holds some of them."""
    mask = np.zeros((size, size), np.uint8)
    step = rng.uniform(12, 18)
    for cy in np.arange(step / 2, size + step / 2, step):
        for cx in np.arange(step / 2, size + step / 2, step):
            jx, jy = rng.uniform(-0.25, 0.25, 2) * step
            draw_one(mask, (cx + jx, cy + jy), step * rng.uniform(0.28, 0.4), rng)
    return mask.astype(bool)


def _dot(mask, c, r, rng):
    cv2.circle(mask, (int(c[0]), int(c[1])), max(2, int(r * 0.8)), 1, -1, cv2.LINE_AA)


def _cross(mask, c, r, rng):
    x, y, r, t = int(c[0]), int(c[1]), int(r), max(1, int(r / 3))
    cv2.line(mask, (x - r, y), (x + r, y), 1, t)
    cv2.line(mask, (x, y - r), (x, y + r), 1, t)


def _triangle(mask, c, r, rng):
    a0 = rng.uniform(0, 2 * np.pi)
    pts = [(c[0] + r * np.cos(a0 + k * 2 * np.pi / 3), c[1] + r * np.sin(a0 + k * 2 * np.pi / 3)) for k in range(3)]
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)


def _square_outline(mask, c, r, rng):
    x, y, r = int(c[0]), int(c[1]), int(r)
    cv2.rectangle(mask, (x - r, y - r), (x + r, y + r), 1, max(1, r // 3))


CLASSES = {  # folder name → mask generator
    "checkerboard": _checkerboard,
    "crosses": lambda rng, s: _scatter(rng, s, _cross),
    "diagonal_stripes": _diagonal,
    "dots": lambda rng, s: _scatter(rng, s, _dot),
    "grid": _grid_lines,
    "horizontal_stripes": _hstripes,
    "rings": _rings,
    "squares": lambda rng, s: _scatter(rng, s, _square_outline),
    "triangles": lambda rng, s: _scatter(rng, s, _triangle),
    "vertical_stripes": _vstripes,
}


def make_image(class_index, rng, size=64):
    """One BGR uint8 image of class `class_index` (index into sorted CLASSES)."""
    mask = CLASSES[sorted(CLASSES)[class_index]](rng, size)
    bg, fg = _colours(rng)
    im = np.empty((size, size, 3), np.float32)
    im[:] = bg
    im[mask] = fg
    shade = np.linspace(rng.uniform(-30, 30), rng.uniform(-30, 30), size, dtype=np.float32)  # lighting gradient
    im += shade[:, None, None] if rng.random() < 0.5 else shade[None, :, None]
    if rng.random() < 0.3:  # some images out of focus
        im = cv2.GaussianBlur(im, (0, 0), rng.uniform(0.6, 1.2))
    im += rng.normal(0, rng.uniform(5, 30), im.shape).astype(np.float32)
    return np.clip(im, 0, 255).astype(np.uint8)


def _write_split(root, split, n, size, seed):
    for ci, name in enumerate(sorted(CLASSES)):
        folder = root / split / name
        folder.mkdir(parents=True)
        for k in range(n):
            rng = np.random.default_rng([seed, SPLITS[split], ci, k])  # each image independent of n
            ok, buf = cv2.imencode(".jpg", make_image(ci, rng, size), [cv2.IMWRITE_JPEG_QUALITY, 90])
            (folder / f"{name}_{k:05d}.jpg").write_bytes(buf.tobytes())


def make_builtin_dataset(root, n_train=300, n_val=60, size=64, seed=0):
    """Write the dataset (root/train/<class>/*.jpg, root/val/<class>/*.jpg) and return root.

    Built in a temporary sibling folder and renamed into place, so an interrupted run leaves no partial
    dataset. If another process created root meanwhile, its (identical) copy is kept.
    """
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} already exists")

    def write(tmp):
        _write_split(tmp, "train", n_train, size, seed)
        _write_split(tmp, "val", n_val, size, seed)

    return write_stamped_folder(root, write, VERSION_FILE, f"{BUILTIN_VERSION} {n_train} {n_val} {size} {seed}")


def is_current(root):
    """True when root holds a complete dataset written by this generator version."""
    return has_stamp(root, VERSION_FILE, BUILTIN_VERSION)
