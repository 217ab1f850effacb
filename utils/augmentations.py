"""Image transforms for classification: eval preprocessing (YOLOv5-exact) and training augmentation.

Every transform takes a numpy HWC BGR uint8 image, as cv2.imread returns it, and the pipelines end in a
normalised float CHW RGB tensor.
"""

import math

import cv2
import numpy as np
import torch


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB
IMAGENET_NORM = (IMAGENET_MEAN, IMAGENET_STD)  # what YOLOv5's classifiers are trained on
UNIT_NORM = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # ultralytics' classifiers take pixels in [0, 1], unnormalised


class Compose:
    """Apply `transforms` in order: torchvision's Compose, written here because importing torchvision loads
    torch._dynamo (~2 s at start, ~0.7 s at exit), which val and predict otherwise never load."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, im):
        for t in self.transforms:
            im = t(im)
        return im


class CenterCrop:
    """Centred square crop of side min(h, w), resized to (h, w) = size.

    The class and attribute names (h, w) match YOLOv5's, because upstream checkpoints pickle instances of
    it inside `model.transforms` and are unpickled into this class.
    """

    def __init__(self, size=640):
        self.h, self.w = (size, size) if isinstance(size, int) else size

    def __call__(self, im):
        imh, imw = im.shape[:2]
        side = min(imh, imw)
        top, left = (imh - side) // 2, (imw - side) // 2
        return cv2.resize(im[top:top + side, left:left + side], (self.w, self.h), interpolation=cv2.INTER_LINEAR)


class ToTensor:
    """HWC BGR uint8 array → CHW RGB contiguous float (or half) tensor in [0, 1].

    Name and attribute (half) match YOLOv5's for checkpoint unpickling, as CenterCrop.
    """

    def __init__(self, half=False):
        self.half = half

    def __call__(self, im):
        chw_rgb = np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])
        t = torch.from_numpy(chw_rgb)
        t = t.half() if self.half else t.float()
        return t / 255.0


class NormalizedTensor:
    """HWC BGR uint8 array → CHW RGB float tensor normalised by (mean, std), in one numpy pass.

    Equal to ToTensor followed by torchvision's Normalize (YOLOv5's) to float rounding, at a fraction of the
    per-image cost, which dominates for small images: 17 µs instead of 58 µs at 32 px.
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.scale = 1 / (255 * std)  # pixel * scale - offset == (pixel / 255 - mean) / std
        self.offset = np.asarray(mean, np.float32).reshape(3, 1, 1) / std

    def __call__(self, im):
        x = im.transpose(2, 0, 1)[::-1].astype(np.float32, order="C")  # one copy: RGB, CHW, float
        x *= self.scale
        x -= self.offset
        return torch.from_numpy(x)


class RandomResizedCrop:
    """Crop a random area fraction `scale` and aspect ratio `ratio` of the image, resize to size x size.

    Works on numpy images with cv2 (no PIL round trip); draws from torch's RNG so DataLoader workers get
    reproducible, distinct streams from the loader's generator.
    """

    def __init__(self, size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = size
        self.scale = scale
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def _box(self, h, w):
        area = h * w
        for _ in range(10):  # rejection sampling, then fall back to the largest centred box
            u = torch.rand(2).tolist()
            target = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(self.log_ratio[0] + u[1] * (self.log_ratio[1] - self.log_ratio[0]))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (1,)))
                left = int(torch.randint(0, w - cw + 1, (1,)))
                return top, left, ch, cw
        side = min(h, w)
        return (h - side) // 2, (w - side) // 2, side, side

    def __call__(self, im):
        top, left, ch, cw = self._box(*im.shape[:2])
        return cv2.resize(im[top:top + ch, left:left + cw], (self.size, self.size), interpolation=cv2.INTER_LINEAR)


class RandomFlip:
    """Horizontal flip with probability hflip, vertical with vflip (numpy views, no copy)."""

    def __init__(self, hflip=0.5, vflip=0.0):
        self.hflip, self.vflip = hflip, vflip

    def __call__(self, im):
        u = torch.rand(2).tolist()
        if u[0] < self.hflip:
            im = im[:, ::-1]
        if u[1] < self.vflip:
            im = im[::-1]
        return im


class ColorJitter:
    """With probability p, scale brightness, contrast and saturation by factors drawn from [1-s, 1+s], in a random
    order, on the uint8 image (rounded and clipped after each step).

    This is albumentations' ColorJitter (hue 0) with its default p=0.5, as YOLOv5 uses it, so the fallback
    augments exactly like the albumentations path. Draws from torch's RNG, as the other transforms.
    """

    def __init__(self, strength=0.4, p=0.5):
        self.low, self.high, self.p = max(0.0, 1 - strength), 1 + strength, p

    def __call__(self, im):
        if torch.rand(1).item() >= self.p:
            return im
        factors = (self.low + torch.rand(3) * (self.high - self.low)).tolist()
        for k in torch.randperm(3).tolist():
            im = (self._brightness, self._contrast, self._saturation)[k](np.ascontiguousarray(im), factors[k])
        return im

    @staticmethod
    def _brightness(im, f):
        return cv2.addWeighted(im, f, im, 0, 0)

    @staticmethod
    def _contrast(im, f):  # blend with the mean grey level
        return cv2.addWeighted(im, f, im, 0, cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).mean() * (1 - f))

    @staticmethod
    def _saturation(im, f):  # blend with the grey image
        grey = cv2.cvtColor(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return cv2.addWeighted(im, f, grey, 1 - f, 0)


def _check_size(size, caller):
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"{caller} size must be an integer, not {size!r} ({type(size).__name__})")


def classify_transforms(size=224, norm=IMAGENET_NORM):
    """Evaluation preprocessing, YOLOv5 v7.0's to float rounding: centre crop → normalised tensor (`norm` = (mean,
    std): ImageNet's for YOLOv5's models, none for ultralytics', see input_norm)."""
    _check_size(size, "classify_transforms")
    return Compose([CenterCrop(size), NormalizedTensor(*norm)])


def classify_train_transforms(size=224, scale=(0.08, 1.0), hflip=0.5, vflip=0.0, jitter=0.4,
                              mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Training augmentation: random resized crop, flips, colour jitter, normalise → (3, size, size) tensor.

    YOLOv5's albumentations pipeline (RandomResizedCrop, HorizontalFlip, ColorJitter with p=0.5, Normalize) done in
    numpy/cv2 with the same distributions (tests/test_augmentation.py compares them with albumentations' and
    torchvision's samplers). It is used whether or not albumentations is installed, so results do not depend on
    what is installed, and it costs less than half as much per image (benchmarks/train_throughput.py).
    """
    _check_size(size, "classify_train_transforms")
    ops = [RandomResizedCrop(size, scale), RandomFlip(hflip, vflip)]
    if jitter > 0:
        ops.append(ColorJitter(jitter))
    ops.append(NormalizedTensor(mean, std))
    return Compose(ops)
