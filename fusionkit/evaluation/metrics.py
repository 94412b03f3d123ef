"""Full-reference image quality metrics (PSNR, SSIM) on batched (N, C, H, W) tensors, per image.

SSIM reproduces scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``, the setting of Wang et al. (2004), so numbers compare with
published tables; everything stays in torch so it runs on the GPU next to the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..colour import rgb_to_ycbcr
from ..errors import FusionkitError

#: Colour spaces a metric can be computed in: all RGB channels, or BT.601 luma only.
SPACES = ("rgb", "y")
#: PSNR caps the mean squared error at this fraction of data_range**2: identical images give 100 dB,
#: not inf, so averages over a test set stay finite.
MSE_FLOOR = 1e-10

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5, an 11-tap window, as in scikit-image
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


class MetricInputError(FusionkitError, ValueError):
    """Images a metric cannot compare (mismatched shapes, too small, unknown colour space)."""


@dataclass(frozen=True)
class Metric:
    """A metric and how to read it, so reports can mark the best value; calling it scores fused
    images (N, 3, H, W) against a reference (full-reference ``fn(pred, target)``) or against their
    exposures (N, K, 3, H, W) (no-reference ``fn(fused, exposures)``), per image: (N,)."""

    name: str
    fn: Callable[..., torch.Tensor]
    higher_is_better: bool
    needs_reference: bool = True
    unit: str = ""
    space: str = "rgb"

    def __call__(self, fused: torch.Tensor, exposures: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        if not self.needs_reference:
            return self.fn(fused, exposures)
        if reference is None:
            raise MetricInputError(f"metric {self.name!r} compares with a reference image; none was given")
        return self.fn(to_space(fused, self.space), to_space(reference, self.space))


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.dim() != 4 or pred.shape != target.shape:
        raise MetricInputError(
            f"metrics compare (N, C, H, W) batches of equal shape; got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def _working(x: torch.Tensor) -> torch.Tensor:
    """At least float32: half precision loses the small differences these metrics measure."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, shape (N,); identical images give 100 dB."""
    _check_pair(pred, target)
    mse = (_working(pred) - _working(target)).square().flatten(1).mean(dim=1)
    peak = data_range**2
    return 10 * torch.log10(peak / mse.clamp_min(MSE_FLOOR * peak))


def _gaussian_taps() -> list[float]:
    radius = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
    taps = [math.exp(-0.5 * (i / _SSIM_SIGMA) ** 2) for i in range(-radius, radius + 1)]
    return [t / sum(taps) for t in taps]


def _gaussian_blur(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Separable Gaussian over H and W with scipy.ndimage's 'reflect' border (edge sample repeated).

    A weighted sum of shifted copies, not a convolution, so float32 stays exact where cuDNN
    would run convolutions in TF32.
    """
    r = len(taps) // 2
    for dim in (-1, -2):
        n = x.shape[dim]
        padded = torch.cat((x.narrow(dim, 0, r).flip(dim), x, x.narrow(dim, n - r, r).flip(dim)), dim=dim)
        x = sum(tap * padded.narrow(dim, i, n) for i, tap in enumerate(taps))
    return x


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image, shape (N,): scikit-image's Gaussian SSIM, mean over channels."""
    _check_pair(pred, target)
    x, y = _working(pred), _working(target)
    taps = _gaussian_taps()
    win = len(taps)
    if min(x.shape[-2:]) < win:
        raise MetricInputError(f"SSIM needs images of at least {win}x{win} pixels; got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    stats = _gaussian_blur(torch.cat((x, y, x * x, y * y, x * y), dim=1), taps)
    ux, uy, uxx, uyy, uxy = stats.split(c, dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return s[..., pad:-pad, pad:-pad].mean(dim=(-2, -1)).mean(dim=1)


def to_space(images: torch.Tensor, space: str = "rgb") -> torch.Tensor:
    """Images (N, 3, H, W) in the colour space a metric is computed in ('y' keeps BT.601 luma only)."""
    if space not in SPACES:
        raise MetricInputError(f"unknown metric space {space!r}; choose one of: {', '.join(SPACES)}")
    if space == "y":
        if images.dim() != 4 or images.shape[1] != 3:
            raise MetricInputError(f"metric space 'y' needs RGB images (N, 3, H, W); got {tuple(images.shape)}")
        return rgb_to_ycbcr(images)[:, :1]
    return images
