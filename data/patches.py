"""Two real, offline image sets cut from photographs bundled with scikit-image (and two with scikit-learn).

`textures`: 10 classes, one grayscale image each (brick, grass, gravel, ...), written as 3-channel gray PNGs.
`photos`: 10 classes, one colour photograph each (astronaut, chelsea, coffee, ...).
Each sample is a square patch of its class's image, at a seeded random position with a random side of
SIDE_FRACTION of the image's shorter side, resized to `size` pixels (cv2.INTER_AREA). Train patches come only from
the left TRAIN_WIDTH of the image's width and val patches only from the rest, so no pixel is in both splits.
200 train and 60 val patches per class; the same files on every run and every machine.
"""

from pathlib import Path

import cv2
import numpy as np

from data.folders import has_stamp, write_stamped_folder

PATCHES_VERSION = "1"  # bump when the conversion changes, so stale copies are regenerated
SIDE_FRACTION = (0.10, 0.30)  # patch side, as a fraction of the image's shorter side
TRAIN_WIDTH = 0.7  # train patches from columns [0, 0.7 w), val patches from [0.7 w, w)
N_TRAIN, N_VAL = 200, 60  # patches per class
SEED = 0


def _read(source, file, dataset):
    """An image file bundled with scikit-image (read from the package folder: never downloaded) or scikit-learn."""
    if source == "sklearn":
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            raise ImportError(f"dataset '{dataset}' needs scikit-learn: pip install scikit-learn") from None
        return load_sample_image(file)
    try:
        import skimage.data
        import skimage.io
    except ImportError:
        raise ImportError(f"dataset '{dataset}' needs scikit-image: pip install scikit-image") from None
    path = Path(skimage.data.__file__).parent / file
    if not path.is_file():
        raise FileNotFoundError(f"dataset '{dataset}' needs {path}, an image shipped with scikit-image>=0.22")
    return skimage.io.imread(path)


def region(width, split):
    """Half-open column range [x0, x1) that `split` ('train' or 'val') patches of an image `width` wide come from."""
    cut = int(width * TRAIN_WIDTH)
    return (0, cut) if split == "train" else (cut, width)


def cut_patches(im, split, n, size, rng):
    """n square patches of im from the columns of `split`, each resized to size x size."""
    h, w = im.shape[:2]
    x0, x1 = region(w, split)
    lo, hi = (f * min(h, w) for f in SIDE_FRACTION)
    out = []
    for fs, fx, fy in rng.random((n, 3)):  # floats only: the same stream on every numpy version
        side = min(int(round(lo + fs * (hi - lo))), x1 - x0, h)
        x = x0 + min(int(fx * (x1 - x0 - side + 1)), x1 - x0 - side)
        y = min(int(fy * (h - side + 1)), h - side)
        out.append(cv2.resize(im[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA))
    return out


class PatchDataset:
    """A generated dataset of patches: name, gray or colour, and its classes as (class, source, file)."""

    def __init__(self, name, classes, gray):
        self.name, self.classes, self.gray = name, classes, gray
        self.version_file = f".{name}_version"

    def image(self, source, file):
        """The class's image as uint8 BGR (gray images repeated over 3 channels)."""
        im = _read(source, file, self.name)
        if im.ndim == 3:
            im = im[..., :3]  # drop alpha
        if self.gray:
            im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im
            return np.repeat(im[..., None], 3, axis=2)
        return np.ascontiguousarray(im[..., ::-1])  # RGB → BGR for cv2.imwrite

    def make(self, root, size=32):
        """Write root/{train,val}/<class>/*.png (built in a temporary sibling, renamed into place) and return root."""
        images = [self.image(source, file) for _, source, file in self.classes]  # fail before writing anything

        def write(tmp):
            for k, ((c, _, _), im) in enumerate(zip(self.classes, images)):
                for s, (split, n) in enumerate((("train", N_TRAIN), ("val", N_VAL))):
                    folder = tmp / split / c
                    folder.mkdir(parents=True)
                    rng = np.random.default_rng([SEED, k, s])
                    for i, patch in enumerate(cut_patches(im, split, n, size, rng)):
                        cv2.imwrite(str(folder / f"{i:03d}.png"), patch)

        return write_stamped_folder(root, write, self.version_file, f"{PATCHES_VERSION} {size}")

    def is_current(self, root):
        """True when root holds a complete dataset written by this conversion version."""
        return has_stamp(root, self.version_file, PATCHES_VERSION)


TEXTURES = PatchDataset("textures", tuple((c, "skimage", f"{c}.png") for c in (
    "brick", "grass", "gravel", "camera", "coins", "moon", "page", "text", "cell", "clock_motion")), gray=True)
PHOTOS = PatchDataset("photos", (("astronaut", "skimage", "astronaut.png"), ("chelsea", "skimage", "chelsea.png"),
                                 ("coffee", "skimage", "coffee.png"), ("rocket", "skimage", "rocket.jpg"),
                                 ("motorcycle", "skimage", "motorcycle_left.png"), ("retina", "skimage", "retina.jpg"),
                                 ("ihc", "skimage", "ihc.png"), ("hubble", "skimage", "hubble_deep_field.jpg"),
                                 ("china", "sklearn", "china.jpg"), ("flower", "sklearn", "flower.jpg")), gray=False)
