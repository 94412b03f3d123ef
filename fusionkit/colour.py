"""Colour conventions, each written once for every layer: BT.601 luma (and which exposure of a bracket is brightest
by it), YCbCr, the networks' [-1, 1] range, DeepFuse's chroma rule, MATLAB's grey weights, and the sRGB curve with
Rec. 709 luminance for the emulated camera."""

from __future__ import annotations

import kornia.color
import numpy as np
import torch
from torch import Tensor

#: ITU-R BT.601 luma weights, as cv2.cvtColor(..., COLOR_RGB2GRAY) uses them.
GRAY = (0.299, 0.587, 0.114)
#: MATLAB rgb2gray: the luma row of the inverse NTSC YIQ matrix, BT.601's 0.299/0.587/0.114 unrounded.
MATLAB_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
#: Rec. 709 luminance weights of linear RGB.
LINEAR_LUMA = (0.2126, 0.7152, 0.0722)
#: Neutral chroma in [0, 1] YCbCr: the 128 of 8-bit.
CHROMA_NEUTRAL = 0.5


def gray(r: Tensor, g: Tensor, b: Tensor) -> Tensor:
    """BT.601 luma of the three colour planes, in a fresh tensor (OpenCV's RGB -> gray)."""
    return (r * GRAY[0]).add_(g, alpha=GRAY[1]).add_(b, alpha=GRAY[2])


def luma(images: Tensor) -> Tensor:
    """(..., 3, H, W) RGB -> (..., H, W) BT.601 luma in float32 (``gray`` of the colour planes)."""
    return gray(*images.float().unbind(dim=-3))


def brightest_exposure(exposures: Tensor, rows: int = 256) -> Tensor:
    """The exposure (N, 3, H, W) of highest mean luma in (N, K, 3, H, W) exposures; the luma is summed in float64,
    ``rows`` rows at a time, so a large bracket needs no luma of every exposure at once."""
    strips = range(0, exposures.shape[-2], rows)
    sums = sum(gray(*exposures[..., top : top + rows, :].float().unbind(-3)).sum((-2, -1), dtype=torch.float64) for top in strips)
    return exposures[torch.arange(exposures.shape[0], device=exposures.device), sums.argmax(1)]


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr (BT.601, full range) with Cb, Cr centred on 0.5 (kornia)."""
    return kornia.color.rgb_to_ycbcr(x)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of ``rgb_to_ycbcr`` (not clamped)."""
    return kornia.color.ycbcr_to_rgb(x)


def to_network_range(x: Tensor) -> Tensor:
    """[0, 1] images (ground truth) -> [-1, 1], the range of the networks' Tanh output."""
    return x * 2 - 1


def from_network_range(y: Tensor) -> Tensor:
    """Network output in [-1, 1] -> image in [0, 1], clamped."""
    return ((y + 1) / 2).clamp(0, 1)


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


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (the inverse sRGB curve)."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values in [0, 1], clipped first."""
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)
