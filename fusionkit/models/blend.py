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
#: Below this many values per exposure (N x 3 x H x W), Mertens works on all exposures at once: a
#: few larger operations beat many small ones; above it, one exposure at a time bounds memory.
AT_ONCE_VALUES = 3 << 20


def mertens_weights(
    exposures: Tensor, contrast: float = 1.0, saturation: float = 1.0, exposedness: float = 0.0
) -> Tensor:
    """Mertens et al.'s quality measures per pixel, (N, K, 1, H, W), normalised over the K exposures.

    Follows OpenCV's MergeMertens: Laplacian contrast of the grey image, saturation as the root of
    the summed squared deviations from the pixel's mean, Gaussian well-exposedness (OpenCV's default
    weight for it is 0), each raised to its weight, multiplied, plus 1e-12. Computed one exposure at
    a time, so a 24-megapixel bracket needs little memory beyond the weights themselves.
    """
    n, k = exposures.shape[:2]
    if _at_once(exposures):
        weights = _quality(exposures.flatten(0, 1), contrast, saturation, exposedness).unflatten(0, (n, k))
    else:
        weights = torch.stack([_quality(exposures[:, i], contrast, saturation, exposedness) for i in range(k)], 1)
    return weights / weights.sum(dim=1, keepdim=True)


def gray(r: Tensor, g: Tensor, b: Tensor) -> Tensor:
    """BT.601 luma of the three colour planes, in a fresh tensor (OpenCV's RGB -> gray)."""
    return (r * GRAY[0]).add_(g, alpha=GRAY[1]).add_(b, alpha=GRAY[2])


def _at_once(exposures: Tensor) -> bool:
    """Whether all exposures are processed together: small brackets, where per-operation overhead dominates."""
    return exposures[:, 0].numel() <= AT_ONCE_VALUES


def _quality(image: Tensor, contrast: float, saturation: float, exposedness: float) -> Tensor:
    """Mertens' unnormalised weight (N, 1, H, W) of one exposure (N, 3, H, W), in as few passes as it takes."""
    r, g, b = image.split(1, dim=1)
    weight = None
    if contrast != 0:
        weight = _raised(laplacian(gray(r, g, b)).abs_(), contrast)
    if saturation != 0:
        # The mean is (r + g + b) * (1/3) in float32: on grey pixels that rounding decides whether the
        # saturation is exactly 0, as in OpenCV, so it is kept as is.
        deviation = image - torch.add(r, g).add_(b).mul_(1 / 3)
        weight = _times(weight, _raised(deviation.square_().sum(dim=1, keepdim=True).sqrt_(), saturation))
    if exposedness != 0:
        well_exposed = (image - 0.5).square_().mul_(-1 / (2 * EXPOSEDNESS_SIGMA**2)).exp_().prod(dim=1, keepdim=True)
        weight = _times(weight, _raised(well_exposed, exposedness))
    return torch.ones_like(r).add_(1e-12) if weight is None else weight.add_(1e-12)


def _raised(measure: Tensor, power: float) -> Tensor:
    return measure if power == 1 else measure.pow_(power)


def _times(weight: Tensor | None, measure: Tensor) -> Tensor:
    return measure if weight is None else weight.mul_(measure)


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
    and the base, which set the picture's tones, use ``coarse_weights``. Exposures are decomposed
    one at a time into a running sum of weighted pyramids, so memory grows with one exposure, not K.
    """
    levels = pyramid_levels(*exposures.shape[-2:]) if levels is None else levels
    gradients = torch.is_grad_enabled() and (weights.requires_grad or exposures.requires_grad)
    if coarse_weights is None and not gradients and _at_once(exposures):
        return _blend_at_once(exposures, weights, levels)
    bands: list[Tensor] = []
    for k in range(exposures.shape[1]):
        coarse = None if coarse_weights is None else coarse_weights[:, k]
        _add_weighted_pyramid(bands, exposures[:, k], weights[:, k], coarse, levels, fine_levels)
    return _collapse(bands)


def _collapse(bands: list[Tensor]) -> Tensor:
    """The image whose Laplacian pyramid is ``bands`` (finest first, the base last)."""
    fused = bands.pop()
    for detail in reversed(bands):
        fused = pyr_up(fused, detail.shape[-2:]).add_(detail)
    return fused


def _blend_at_once(exposures: Tensor, weights: Tensor, levels: int) -> Tensor:
    """:func:`pyramid_blend` of a small bracket: exposures and weights go down the pyramid together."""
    channels = exposures.shape[2]
    stack = torch.cat((exposures, weights), dim=2)  # (N, K, C + 1, H, W): one pyr_down serves both
    bands: list[Tensor] = []
    for _ in range(levels):
        smaller = pyr_down(stack)
        image = stack[:, :, :channels]
        detail = pyr_up(smaller[:, :, :channels], image.shape[-2:]).neg_().add_(image)
        bands.append(detail.mul_(stack[:, :, channels:]).sum(1))
        stack = smaller
    bands.append(stack[:, :, :channels].mul(stack[:, :, channels:]).sum(1))
    return _collapse(bands)


def _add_weighted_pyramid(
    bands: list[Tensor], image: Tensor, weight: Tensor, coarse: Tensor | None, levels: int, fine_levels: int
) -> None:
    """Add one exposure's Laplacian pyramid, weighted by its weights' Gaussian pyramid, into ``bands``."""
    in_place = not (torch.is_grad_enabled() and (weight.requires_grad or image.requires_grad))
    for level in range(levels + 1):
        level_weight = weight if coarse is None or level < fine_levels else coarse
        if level < levels:
            smaller = pyr_down(image)
            upsampled = pyr_up(smaller, image.shape[-2:])
            detail = upsampled.neg_().add_(image) if in_place else image - upsampled
            if coarse is None or level + 1 < fine_levels:  # past fine_levels only the coarse weights are used
                weight = pyr_down(weight)
            if coarse is not None:
                coarse = pyr_down(coarse)
            image = smaller
        else:
            detail = image
        if len(bands) <= level:
            bands.append(detail.mul_(level_weight) if in_place and detail is not image else detail * level_weight)
        elif in_place:
            bands[level].addcmul_(detail, level_weight)
        else:
            bands[level] = bands[level].addcmul(detail, level_weight)


class WeightBlend(nn.Module):
    """Per-exposure logits (N, K, H, W) + exposures (N, K, 3, H, W) in [0, 1] -> fused (N, 3, H, W).

    ``prior="mertens"`` adds the log of Mertens' weights to the logits, so a head whose last layer
    starts at zero starts as exactly the ``mertens`` method and learns corrections to it;
    ``keep_balance`` centres each exposure's logits over the image, so the prior keeps setting how
    much each exposure contributes overall and training only redistributes it from place to place;
    ``fine_levels=n`` lets the learned weights choose the detail of the n finest pyramid levels only,
    the prior's weights the coarser levels and so the tones; ``prior_shift`` tilts the prior from the
    darkest exposure (0) to the brightest (``prior_shift``, a log weight), so a negative shift keeps
    more of the darker exposures' tones; ``mode="pyramid"`` blends in a Laplacian pyramid,
    ``"direct"`` per pixel.
    """

    def __init__(
        self, mode: str = "pyramid", prior: str = "mertens", levels: int | None = None, keep_balance: bool = False,
        fine_levels: int | None = None, prior_shift: float = 0.0,
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
        if prior_shift and prior != "mertens":
            raise ComponentOptionError("prior_shift tilts Mertens' weights: it needs prior 'mertens'")
        self.mode, self.prior, self.levels, self.keep_balance, self.fine_levels = mode, prior, levels, keep_balance, fine_levels
        self.prior_shift = float(prior_shift)

    def weights(self, exposures: Tensor, logits: Tensor, prior: Tensor | None = None) -> Tensor:
        """Weights (N, K, 1, H, W) that sum to one over the exposures (``prior``: Mertens' weights, if known)."""
        logits = logits.float()[:, :, None]
        if self.keep_balance:
            logits = logits - logits.mean(dim=(-2, -1), keepdim=True)
        if self.prior != "mertens":
            return torch.softmax(logits, dim=1)
        prior = prior if prior is not None else self.prior_weights(exposures)
        if torch.is_grad_enabled() and logits.requires_grad:
            return torch.softmax(logits + prior.log(), dim=1)
        # softmax(logits + log prior) = prior * exp(logits) / sum, in place: one full-resolution buffer.
        weights = (logits - logits.amax(dim=1, keepdim=True)).exp_().mul_(prior)
        return weights.div_(weights.sum(dim=1, keepdim=True))

    def prior_weights(self, images: Tensor) -> Tensor:
        """Mertens' weights of (N, K, 3, H, W) exposures, tilted by ``prior_shift`` from darkest to brightest."""
        prior = mertens_weights(images)
        k = images.shape[1]
        if not self.prior_shift or k < 2:
            return prior
        rank = images.mean(dim=(2, 3, 4)).argsort(dim=1).argsort(dim=1)  # 0 for the darkest exposure
        tilt = (rank.to(prior.dtype) * (self.prior_shift / (k - 1))).exp()[..., None, None, None]
        tilted = prior.mul_(tilt)
        return tilted.div_(tilted.sum(dim=1, keepdim=True))

    def forward(self, exposures: Tensor, logits: Tensor) -> Tensor:
        images = exposures.float()
        prior = self.prior_weights(images) if self.prior == "mertens" else None
        weights = self.weights(images, logits, prior)
        if self.mode == "direct":
            return (images * weights).sum(dim=1).clamp(0, 1)
        coarse = prior if self.fine_levels is not None else None  # the prior keeps the coarse levels
        return pyramid_blend(images, weights, self.levels, coarse, self.fine_levels or 0).clamp(0, 1)

