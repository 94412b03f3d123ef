"""Transforms applied identically to every exposure and the ground truth (crop, flip, downscale), and normalisation."""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np
import torch.nn.functional as F
from torch import Tensor

#: Crops and flips take NumPy arrays (the loader's, single-threaded) or tensors.
Images = TypeVar("Images", np.ndarray, Tensor)
#: Added to the standard deviation so flat (constant) samples do not divide by zero.
NORM_EPS = 1e-6


def random_crop(images: Images, size: tuple[int, int], rng: np.random.Generator) -> Images:
    """The same random ``size`` = (h, w) window of every image in a (..., H, W) stack (array or tensor)."""
    height, width = images.shape[-2:]
    h, w = size
    if h > height or w > width:
        raise ValueError(f"crop {h}x{w} is larger than the image ({height}x{width})")
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    return images[..., top : top + h, left : left + w]


def random_flip(images: Images, rng: np.random.Generator) -> Images:
    """Flip every image of a (..., H, W) stack the same way: left-right and up-down, each with p = 1/2."""
    horizontal, vertical = rng.random(2) < 0.5
    dims = [d for d, flip in ((-1, horizontal), (-2, vertical)) if flip]
    if not dims:
        return images
    return images.flip(dims) if isinstance(images, Tensor) else np.flip(images, dims)


def fit_within(image: Tensor, max_side: int) -> Tensor:
    """Downscale (..., C, H, W) images so their longer side is at most ``max_side`` (aspect kept; antialiased bilinear)."""
    height, width = image.shape[-2:]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    flat = image.reshape(-1, *image.shape[-3:])
    small = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return small.reshape(*image.shape[:-2], *size)


class NormStats(NamedTuple):
    """Per-sample mean and standard deviation, shaped to broadcast against the batch they came from."""

    mean: Tensor
    std: Tensor


def std_normalize(x: Tensor) -> tuple[Tensor, NormStats]:
    """Standard-deviation normalisation: x' = (x - mean) / (std + 1e-6).

    One scalar mean and one scalar (population) std per sample, over all its exposures' pixels
    jointly: a batch (N, K, C, H, W) gets stats of shape (N, 1, 1, 1, 1); one sample (K, C, H, W)
    gets (1, 1, 1, 1). Normalising jointly keeps the exposures' relative brightness, which is the
    signal the fusion needs.
    """
    if x.ndim not in (4, 5):
        raise ValueError(f"expected (N, K, C, H, W) or (K, C, H, W), got {tuple(x.shape)}")
    dims = (-4, -3, -2, -1)
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, correction=0)
    return (x - mean) / (std + NORM_EPS), NormStats(mean, std)


def std_denormalize(x_norm: Tensor, stats: NormStats) -> Tensor:
    """Inverse of ``std_normalize`` given the stats it returned."""
    return x_norm * (stats.std + NORM_EPS) + stats.mean
