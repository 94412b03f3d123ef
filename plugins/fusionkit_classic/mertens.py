"""Mertens, Kautz & Van Reeth (2007) exposure fusion, following OpenCV's MergeMertens step for step."""

from __future__ import annotations

import torch

from fusionkit.api import ComponentOptionError, ShadowFill, blend_rows, mertens_weights, pyramid_blend

from .base import FusionMethod


class Mertens(FusionMethod):
    """Mertens et al. (2007) exposure fusion: contrast/saturation/exposedness weights, pyramid blending;
    ``shadow_fill`` mixes in the brightest exposure where the blend leaves black what it shows."""

    def __init__(
        self,
        contrast_weight: float = 1.0,
        saturation_weight: float = 1.0,
        exposedness_weight: float = 0.0,
        levels: int | None = None,
        shadow_fill: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(shadow_fill, bool):
            raise ComponentOptionError(f"method 'mertens': shadow_fill must be true or false; got {shadow_fill!r}")
        if levels is not None and (not isinstance(levels, int) or levels < 0):
            raise ComponentOptionError(f"method 'mertens': levels must be a whole number >= 0 or None; got {levels!r}")
        self.contrast_weight = float(contrast_weight)
        self.saturation_weight = float(saturation_weight)
        self.exposedness_weight = float(exposedness_weight)
        self.levels = levels
        self.shadow_fill = ShadowFill() if shadow_fill else None

    def weights(self, exposures: torch.Tensor) -> torch.Tensor:
        """Per-pixel weights (N, K, 1, H, W), normalised to sum to one over the K exposures."""
        return mertens_weights(exposures, self.contrast_weight, self.saturation_weight, self.exposedness_weight)

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        dtype = exposures.dtype
        # 1e-12 and the products underflow in half precision, so work in at least float32.
        images = exposures.to(torch.promote_types(dtype, torch.float32))
        if torch.is_grad_enabled() and images.requires_grad:
            fused = pyramid_blend(images, self.weights(images), self.levels)
        else:  # weights made a strip at a time as the blend asks for them: none at full resolution
            fused = blend_rows(images, lambda top, bottom: (self.weights(images[..., top:bottom, :]), None), self.levels)
        fused = fused.clamp_(0.0, 1.0)
        return (fused if self.shadow_fill is None else self.shadow_fill(fused, images)).to(dtype)
