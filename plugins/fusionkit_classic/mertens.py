"""Mertens, Kautz & Van Reeth (2007) exposure fusion, following OpenCV's MergeMertens step for step."""

from __future__ import annotations

import math

import torch

from fusionkit.errors import ComponentOptionError

from .base import FusionMethod
from .pyramid import laplacian, pyr_down, pyr_up

#: ITU-R BT.601 luma weights, as cv2.cvtColor(..., COLOR_RGB2GRAY) uses them.
_GRAY = (0.299, 0.587, 0.114)
#: Well-exposedness is a Gaussian around mid-grey with sigma 0.2 (2 sigma^2 = 0.08).
_SIGMA = 0.2


class Mertens(FusionMethod):
    """Mertens et al. (2007) exposure fusion: contrast/saturation/exposedness weights, pyramid blending."""

    def __init__(
        self,
        contrast_weight: float = 1.0,
        saturation_weight: float = 1.0,
        exposedness_weight: float = 0.0,
        levels: int | None = None,
    ) -> None:
        super().__init__()
        if levels is not None and (not isinstance(levels, int) or levels < 0):
            raise ComponentOptionError(f"method 'mertens': levels must be a whole number >= 0 or None; got {levels!r}")
        self.contrast_weight = float(contrast_weight)
        self.saturation_weight = float(saturation_weight)
        self.exposedness_weight = float(exposedness_weight)
        self.levels = levels

    def weights(self, exposures: torch.Tensor) -> torch.Tensor:
        """Per-pixel weights (N, K, 1, H, W), normalised to sum to one over the K exposures."""
        gray = sum(w * exposures[:, :, c : c + 1] for c, w in enumerate(_GRAY))
        contrast = laplacian(gray).abs()
        # OpenCV's "saturation" is the root of the summed squared deviations (sqrt(3) x the std; the
        # factor cancels in the normalisation). Its mean is (r + g + b) * (1/3) in float32: on grey
        # pixels that rounding decides whether saturation is exactly 0, so it is copied as is.
        r, g, b = exposures.split(1, dim=2)
        deviation = exposures - (r + g + b) * (1 / 3)
        saturation = deviation.square().sum(dim=2, keepdim=True).sqrt()
        exposedness = torch.exp(-(exposures - 0.5).square() / (2 * _SIGMA**2)).prod(dim=2, keepdim=True)
        weights = (
            contrast.pow(self.contrast_weight)
            * saturation.pow(self.saturation_weight)
            * exposedness.pow(self.exposedness_weight)
            + 1e-12
        )
        return weights / weights.sum(dim=1, keepdim=True)

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        dtype = exposures.dtype
        # 1e-12 and the products above underflow in half precision, so work in at least float32.
        images = exposures.to(torch.promote_types(dtype, torch.float32))
        weights = self.weights(images)
        levels = self.levels if self.levels is not None else int(math.log2(min(images.shape[-2:])))
        blended = []
        for _ in range(levels):
            smaller, weights_smaller = pyr_down(images), pyr_down(weights)
            detail = images - pyr_up(smaller, images.shape[-2:])
            blended.append((detail * weights).sum(dim=1))
            images, weights = smaller, weights_smaller
        fused = (images * weights).sum(dim=1)
        for detail in reversed(blended):
            fused = detail + pyr_up(fused, detail.shape[-2:])
        return fused.clamp(0.0, 1.0).to(dtype)
