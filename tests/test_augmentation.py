"""Training augmentation: ours (numpy/cv2) draws the same crops, flips and colour jitter as YOLOv5's albumentations
pipeline and torchvision's samplers; and --hyp reaches the transforms.

Crops and flips are measured on an image whose blue channel is the x coordinate and green the y coordinate: a
linear ramp survives bilinear resizing exactly, so the output's ramps give back the crop's width, height and
direction. Jitter is measured on a flat grey image, where only brightness changes its value.
"""

import numpy as np
import pytest
import torch

from utils.augmentations import IMAGENET_MEAN, IMAGENET_STD, ColorJitter, classify_train_transforms
from utils.dataloaders import ClassificationDataset

SIZE, SIDE, N = 16, 200, 600  # output size, ramp image side, samples per statistic
RAMPS = np.stack([*np.mgrid[0:SIDE, 0:SIDE][::-1], np.full((SIDE, SIDE), 128)], -1).astype(np.uint8)  # B=x, G=y


def _pixels(tensor):
    """Normalised RGB tensor → float RGB pixel values 0-255."""
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (tensor * std + mean) * 255


def crop_samples(transform, n=N):
    """(area fractions, horizontal flips, vertical flips) of n augmented ramp images."""
    torch.manual_seed(0)
    areas, hflips, vflips = [], [], []
    for _ in range(n):
        rgb = _pixels(transform(RAMPS))
        x, y = rgb[2], rgb[1]
        dx = (x[0, -1] - x[0, 0]).item() * SIZE / (SIZE - 1)  # crop width, negative when mirrored
        dy = (y[-1, 0] - y[0, 0]).item() * SIZE / (SIZE - 1)
        areas.append(abs(dx * dy) / SIDE**2)
        hflips.append(dx < 0)
        vflips.append(dy < 0)
    return np.array(areas), np.mean(hflips), np.mean(vflips)


def brightness_samples(transform, n=N):
    """Output/input value of a flat grey image: 1 where no jitter was applied, else the brightness factor."""
    torch.manual_seed(0)
    grey = np.full((24, 24, 3), 100, np.uint8)
    return np.array([_pixels(transform(grey)).mean().item() / 100 for _ in range(n)])


def test_crop_flip_and_jitter_statistics():
    transform = classify_train_transforms(SIZE, scale=(0.25, 1.0), hflip=0.3, vflip=0.1, jitter=0)
    assert [type(t).__name__ for t in transform.transforms][:2] == ["RandomResizedCrop", "RandomFlip"]
    areas, hflips, vflips = crop_samples(transform)
    assert areas.min() > 0.25 - 0.03 and areas.max() < 1.0 + 0.03  # area fraction inside --hyp scale
    assert 0.5 < np.median(areas) < 0.7  # uniform area, less the big boxes whose aspect does not fit
    sigma = (0.25 / N) ** 0.5
    assert abs(hflips - 0.3) < 4 * sigma and abs(vflips - 0.1) < 4 * sigma

    factors = brightness_samples(classify_train_transforms(SIZE, scale=(1.0, 1.0), hflip=0, jitter=0.4))
    jittered = factors[np.abs(factors - 1) > 0.005]
    assert abs(len(jittered) / N - 0.5) < 4 * sigma  # applied to half the images, as YOLOv5's albumentations
    assert jittered.min() >= 0.6 - 0.01 and jittered.max() <= 1.4 + 0.01 and abs(jittered.mean() - 1) < 0.04

    untouched = classify_train_transforms(SIZE, scale=(1.0, 1.0), hflip=0, vflip=0, jitter=0)
    assert crop_samples(untouched, n=20)[1:] == (0, 0) and np.all(brightness_samples(untouched, n=20) == 1)


def test_color_jitter_steps_match_their_definitions():
    im = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ColorJitter._brightness(im, 0.5), np.round(im * 0.5).astype(np.uint8))
    grey = np.full_like(im, 77)
    np.testing.assert_array_equal(ColorJitter._contrast(grey, 1.3), grey)  # a flat image has no contrast
    np.testing.assert_array_equal(ColorJitter._saturation(grey, 0.2), grey)  # nor saturation
    assert ColorJitter(0.4, p=0)(im) is im


def _albumentations_pipeline(size, scale, hflip, vflip):
    """YOLOv5's albumentations training pipeline (jitter off) behind our BGR-numpy → tensor interface."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    ops = [A.RandomResizedCrop(size=(size, size), scale=scale), A.HorizontalFlip(p=hflip), A.VerticalFlip(p=vflip),
           A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()]
    pipeline = A.Compose(ops)
    pipeline.set_random_seed(0)
    return lambda im: pipeline(image=np.ascontiguousarray(im[..., ::-1]))["image"]


def _reference_transforms(size, scale, hflip, vflip):
    """The crop/flip samplers ours must match: torchvision's (the same Inception-style crop sampling), always; and
    YOLOv5's albumentations pipeline, where albumentations (>= 2) is installed."""
    import torchvision.transforms as T

    to_rgb = T.Lambda(lambda im: torch.from_numpy(np.ascontiguousarray(im[..., ::-1])).permute(2, 0, 1).float() / 255)
    refs = {"torchvision": T.Compose([to_rgb, T.RandomResizedCrop(size, scale=scale, antialias=False),
                                      T.RandomHorizontalFlip(hflip), T.RandomVerticalFlip(vflip),
                                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])}
    try:
        import albumentations
    except ImportError:
        return refs
    if int(albumentations.__version__.split(".")[0]) >= 2:  # seedable pipelines and size=(h, w) crops
        refs["albumentations"] = _albumentations_pipeline(size, scale, hflip, vflip)
    return refs


@pytest.mark.slow
def test_ours_draws_the_same_crops_and_flips_as_its_peers():
    settings = dict(scale=(0.08, 1.0), hflip=0.5, vflip=0.2)
    ours = crop_samples(classify_train_transforms(SIZE, jitter=0, **settings))
    for name, reference in _reference_transforms(SIZE, **settings).items():
        theirs = crop_samples(reference)
        assert abs(ours[0].mean() - theirs[0].mean()) < 0.04, name
        np.testing.assert_allclose(np.quantile(ours[0], [0.1, 0.5, 0.9]), np.quantile(theirs[0], [0.1, 0.5, 0.9]),
                                   atol=0.05, err_msg=name)
        sigma = (0.5 / N) ** 0.5  # of a difference of two rates
        assert abs(ours[1] - theirs[1]) < 4 * sigma and abs(ours[2] - theirs[2]) < 4 * sigma, name


def test_dataset_takes_hyp_settings(tmp_path):
    import cv2

    (tmp_path / "a").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "ramps.png"), RAMPS)
    dataset = ClassificationDataset(tmp_path, augment=True, imgsz=SIZE,
                                    hyp={"scale": [1.0, 1.0], "fliplr": 1.0, "flipud": 1.0, "jitter": 0.0})
    _, hflips, vflips = crop_samples(lambda im: dataset[0][0], n=3)
    assert hflips == 1 and vflips == 1
