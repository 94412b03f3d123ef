"""Transforms applied identically to both exposures and the ground truth, normalisation, and Y-only helpers."""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import kornia.color
import numpy as np
import torch.nn.functional as F
from torch import Tensor

#: Crops and flips take NumPy arrays (the loader's, single-threaded) or tensors.
Images = TypeVar("Images", np.ndarray, Tensor)
#: Added to the standard deviation so flat (constant) samples do not divide by zero.
NORM_EPS = 1e-6
#: Neutral chroma in [0, 1] YCbCr: the 128 of 8-bit.
CHROMA_NEUTRAL = 0.5


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


def to_network_range(x: Tensor) -> Tensor:
    """[0, 1] images (ground truth) -> [-1, 1], the range of the networks' Tanh output."""
    return x * 2 - 1


def from_network_range(y: Tensor) -> Tensor:
    """Network output in [-1, 1] -> image in [0, 1], clamped."""
    return ((y + 1) / 2).clamp(0, 1)


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr (BT.601, full range) with Cb, Cr centred on 0.5 (kornia)."""
    return kornia.color.rgb_to_ycbcr(x)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of ``rgb_to_ycbcr`` (not clamped)."""
    return kornia.color.ycbcr_to_rgb(x)


def fuse_chroma(cbcr: Tensor, tau: float = CHROMA_NEUTRAL) -> Tensor:
    """DeepFuse's chroma fusion for Y-only models: (N, K, 2, H, W) -> (N, 2, H, W).

    Per channel and pixel, C = sum_i C_i |C_i - tau| / sum_j |C_j - tau|: the more saturated
    exposure dominates. Where every exposure is exactly neutral (all weights 0), C = tau.
    """
    if cbcr.ndim != 5 or cbcr.shape[2] != 2:
        raise ValueError(f"expected chroma (N, K, 2, H, W), got {tuple(cbcr.shape)}")
    weights = (cbcr - tau).abs()
    total = weights.sum(dim=1)
    neutral = total == 0
    fused = (cbcr * weights).sum(dim=1) / total.masked_fill(neutral, 1)
    return fused.masked_fill(neutral, tau)
