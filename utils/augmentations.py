"""Image transforms for classification: eval preprocessing (YOLOv5-exact) and training augmentation.

Every transform takes a numpy HWC BGR uint8 image, as cv2.imread returns it, and the pipelines end in a
normalised float CHW RGB tensor.
"""

import math

import cv2
import numpy as np
import torch
import torchvision.transforms as T

from utils.log import LOGGER

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB
IMAGENET_NORM = (IMAGENET_MEAN, IMAGENET_STD)  # what YOLOv5's classifiers are trained on
UNIT_NORM = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # ultralytics' classifiers take pixels in [0, 1], unnormalised


def input_norm(model):
    """(mean, std) a model's weights expect: ultralytics' YOLOv8/YOLO11/YOLO26 (YAML with `scales`) take raw [0, 1]
    pixels, YOLOv5's take ImageNet-normalised ones. `model` may be a model, a YAML dict, or None (YOLOv5's)."""
    from models.yolo import is_ultralytics

    d = model if isinstance(model, dict) else getattr(model, "yaml", None)
    return UNIT_NORM if is_ultralytics(d) else IMAGENET_NORM


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


class AlbumentationsClassify:
    """YOLOv5's albumentations training pipeline behind the same BGR-numpy → tensor interface."""

    def __init__(self, size, scale, hflip, vflip, jitter, mean, std):
        import albumentations as A
        from albumentations.pytorch import ToTensorV2

        try:
            crop = A.RandomResizedCrop(size=(size, size), scale=scale)  # albumentations >= 1.4
        except TypeError:
            crop = A.RandomResizedCrop(height=size, width=size, scale=scale)
        ops = [crop]
        if hflip > 0:
            ops.append(A.HorizontalFlip(p=hflip))
        if vflip > 0:
            ops.append(A.VerticalFlip(p=vflip))
        if jitter > 0:
            ops.append(A.ColorJitter(jitter, jitter, jitter, 0))
        ops += [A.Normalize(mean=mean, std=std), ToTensorV2()]
        self.pipeline = A.Compose(ops)

    def __call__(self, im):
        if hasattr(self.pipeline, "set_random_seed"):
            # albumentations >= 2 keeps a private RNG (unseeded, and cloned into every DataLoader worker);
            # drive it from torch's RNG like the other transforms so runs are reproducible.
            self.pipeline.set_random_seed(int(torch.randint(0, 2**31 - 1, (1,))))
        return self.pipeline(image=cv2.cvtColor(im, cv2.COLOR_BGR2RGB))["image"]


def _check_size(size, caller):
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"{caller} size must be an integer, not {size!r} ({type(size).__name__})")


def classify_transforms(size=224, norm=IMAGENET_NORM):
    """Evaluation preprocessing, identical to YOLOv5 v7.0: centre crop → tensor → normalise (`norm` = (mean, std):
    ImageNet's for YOLOv5's models, none for ultralytics', see input_norm)."""
    _check_size(size, "classify_transforms")
    return T.Compose([CenterCrop(size), ToTensor(), T.Normalize(*norm)])


def classify_train_transforms(size=224, scale=(0.08, 1.0), hflip=0.5, vflip=0.0, jitter=0.4,
                              mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Training augmentation: random resized crop, flips, colour jitter, normalise → (3, size, size) tensor.

    Uses albumentations when installed (as YOLOv5 does); otherwise the same operations in numpy/cv2, with the
    same distributions (crop area and aspect, flips, jitter applied to half the images; tests/test_data.py
    compares the two), so the accuracy does not depend on what is installed. YOLOv5 would train without
    augmentation in that case.
    """
    _check_size(size, "classify_train_transforms")
    try:
        return AlbumentationsClassify(size, scale, hflip, vflip, jitter, mean, std)
    except ImportError:
        pass
    except Exception as e:  # installed but broken (mismatched albucore, numpy, ...): say so, train anyway
        LOGGER.warning(f"WARNING ⚠️ albumentations unusable ({type(e).__name__}: {e}); using torchvision augmentation")
    ops = [RandomResizedCrop(size, scale), RandomFlip(hflip, vflip)]
    if jitter > 0:
        ops.append(ColorJitter(jitter))
    ops += [ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)
