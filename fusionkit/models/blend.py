"""Blending exposures by per-pixel weight maps: Mertens' hand-made weights and the Laplacian-pyramid
blend they feed, shared by the ``mertens`` method and the learned weight-map heads.

A weight-map head predicts one logit map per exposure; :class:`WeightBlend` turns logits into
weights normalised over the exposures (softmax, optionally on top of Mertens' weights as a prior)
and blends the photographs themselves, so a learned fusion keeps their detail and colour.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ComponentOptionError
from .pyramid import laplacian, pyr_down, pyr_up

#: ITU-R BT.601 luma weights, as cv2.cvtColor(..., COLOR_RGB2GRAY) uses them.
GRAY = (0.299, 0.587, 0.114)
#: Well-exposedness is a Gaussian around mid-grey with sigma 0.2.
EXPOSEDNESS_SIGMA = 0.2
BLEND_MODES = ("pyramid", "direct")
PRIORS = ("mertens", "none")


def mertens_weights(
    exposures: Tensor, contrast: float = 1.0, saturation: float = 1.0, exposedness: float = 0.0
) -> Tensor:
    """Mertens et al.'s quality measures per pixel, (N, K, 1, H, W), normalised over the K exposures.

    Follows OpenCV's MergeMertens: Laplacian contrast of the grey image, saturation as the root of
    the summed squared deviations from the pixel's mean, Gaussian well-exposedness (OpenCV's default
    weight for it is 0), each raised to its weight, multiplied, plus 1e-12.
    """
    gray = sum(w * exposures[:, :, c : c + 1] for c, w in enumerate(GRAY))
    # The mean is (r + g + b) * (1/3) in float32: on grey pixels that rounding decides whether the
    # saturation is exactly 0, as in OpenCV, so it is kept as is.
    r, g, b = exposures.split(1, dim=2)
    deviation = exposures - (r + g + b) * (1 / 3)
    measures = (
        (laplacian(gray).abs(), contrast),
        (deviation.square().sum(dim=2, keepdim=True).sqrt(), saturation),
        (torch.exp(-(exposures - 0.5).square() / (2 * EXPOSEDNESS_SIGMA**2)).prod(dim=2, keepdim=True), exposedness),
    )
    weights = math.prod((m.pow(p) for m, p in measures if p != 0), start=torch.ones_like(gray)) + 1e-12
    return weights / weights.sum(dim=1, keepdim=True)


def pyramid_levels(height: int, width: int) -> int:
    """OpenCV's pyramid depth for MergeMertens: log2 of the shorter side."""
    return int(math.log2(min(height, width)))


def pyramid_blend(
    exposures: Tensor, weights: Tensor, levels: int | None = None, coarse_weights: Tensor | None = None, fine_levels: int = 0
) -> Tensor:
    """Blend (N, K, C, H, W) exposures with (N, K, 1, H, W) normalised weights in a Laplacian pyramid.

    Each exposure's detail at each scale is weighted by the Gaussian pyramid of its weights, so
    seams between regions taken from different exposures vanish (Burt & Adelson; Mertens et al.).
    With ``coarse_weights``, only the ``fine_levels`` finest levels use ``weights``; the coarser ones
    and the base, which set the picture's tones, use ``coarse_weights``.
    """
    levels = pyramid_levels(*exposures.shape[-2:]) if levels is None else levels
    coarse = coarse_weights is not None
    images, details = exposures, []
    for level in range(levels):
        level_weights = coarse_weights if coarse and level >= fine_levels else weights
        smaller = pyr_down(images)
        details.append(((images - pyr_up(smaller, images.shape[-2:])) * level_weights).sum(dim=1))
        images, weights = smaller, pyr_down(weights)
        if coarse:
            coarse_weights = pyr_down(coarse_weights)
    fused = (images * (coarse_weights if coarse and levels >= fine_levels else weights)).sum(dim=1)
    for detail in reversed(details):
        fused = detail + pyr_up(fused, detail.shape[-2:])
    return fused


class WeightBlend(nn.Module):
    """Per-exposure logits (N, K, H, W) + exposures (N, K, 3, H, W) in [0, 1] -> fused (N, 3, H, W).

    ``prior="mertens"`` adds the log of Mertens' weights to the logits, so a head whose last layer
    starts at zero starts as exactly the ``mertens`` method and learns corrections to it;
    ``keep_balance`` centres each exposure's logits over the image, so the prior keeps setting how
    much each exposure contributes overall and training only redistributes it from place to place;
    ``fine_levels=n`` lets the learned weights choose the detail of the n finest pyramid levels only,
    the prior's weights the coarser levels and so the tones; ``mode="pyramid"`` blends in a Laplacian
    pyramid, ``"direct"`` per pixel.
    """

    def __init__(
        self, mode: str = "pyramid", prior: str = "mertens", levels: int | None = None, keep_balance: bool = False,
        fine_levels: int | None = None,
    ) -> None:
        super().__init__()
        if mode not in BLEND_MODES:
            raise ComponentOptionError(f"blend mode must be one of {', '.join(BLEND_MODES)}; got {mode!r}")
        if prior not in PRIORS:
            raise ComponentOptionError(f"blend prior must be one of {', '.join(PRIORS)}; got {prior!r}")
        if fine_levels is not None and (mode != "pyramid" or prior != "mertens"):
            raise ComponentOptionError(
                "fine_levels keeps the prior's tones: it needs blend mode 'pyramid' and prior 'mertens' "
                "(pass fine_levels=null to let the learned weights choose every level)"
            )
        self.mode, self.prior, self.levels, self.keep_balance, self.fine_levels = mode, prior, levels, keep_balance, fine_levels

    def weights(self, exposures: Tensor, logits: Tensor, prior: Tensor | None = None) -> Tensor:
        """Weights (N, K, 1, H, W) that sum to one over the exposures (``prior``: Mertens' weights, if known)."""
        logits = logits.float()[:, :, None]
        if self.keep_balance:
            logits = logits - logits.mean(dim=(-2, -1), keepdim=True)
        if self.prior == "mertens":
            logits = logits + (prior if prior is not None else mertens_weights(exposures)).log()
        return torch.softmax(logits, dim=1)

    def forward(self, exposures: Tensor, logits: Tensor) -> Tensor:
        images = exposures.float()
        prior = mertens_weights(images) if self.prior == "mertens" else None
        weights = self.weights(images, logits, prior)
        if self.mode == "direct":
            return (images * weights).sum(dim=1).clamp(0, 1)
        coarse = prior if self.fine_levels is not None else None  # the prior keeps the coarse levels
        return pyramid_blend(images, weights, self.levels, coarse, self.fine_levels or 0).clamp(0, 1)

