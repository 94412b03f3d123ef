"""Weights for blending exposures: Mertens' hand-made quality measures, and the learned weight-map
heads' logits on top of them; both feed the Laplacian-pyramid blend of :mod:`.laplacian_blend`.

A weight-map head predicts one logit map per exposure; :class:`WeightBlend` turns logits into
weights normalised over the exposures (softmax, optionally on top of Mertens' weights as a prior)
and blends the photographs themselves, so a learned fusion keeps their detail and colour.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from ..colour import gray
from ..errors import ComponentOptionError
from .laplacian_blend import STRIP_ROWS, LevelCorrection, at_once, blend_rows, pyramid_blend, pyramid_levels
from .pyramid import laplacian
from .shadow_fill import ShadowFill

#: Well-exposedness is a Gaussian around mid-grey with sigma 0.2.
EXPOSEDNESS_SIGMA = 0.2
BLEND_MODES = ("pyramid", "direct")
PRIORS = ("mertens", "none")
#: ``logits_of(top, bottom)`` -> logits (N, K, bottom - top, W) of rows top:bottom, so full-resolution
#: logits need never exist (see :meth:`WeightBlend.forward`).
LogitRows = Callable[[int, int], Tensor]
#: ``refine(exposures, logits, blend)`` -> a correction of the blend's weights at each pyramid level for these
#: exposures (a per-image optimisation), or ``None`` to blend them as they are.
Refiner = Callable[[Tensor, Tensor, "WeightBlend"], "LevelCorrection | None"]

__all__ = ["WeightBlend", "mertens_weights", "pyramid_blend", "pyramid_levels"]


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
    if at_once(exposures):
        weights = _quality(exposures.flatten(0, 1), contrast, saturation, exposedness).unflatten(0, (n, k))
    else:
        weights = torch.stack([_quality(exposures[:, i], contrast, saturation, exposedness) for i in range(k)], 1)
    return weights / weights.sum(dim=1, keepdim=True)


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


class WeightBlend(nn.Module):
    """Per-exposure logits (N, K, H, W) + exposures (N, K, 3, H, W) in [0, 1] -> fused (N, 3, H, W).

    ``prior="mertens"`` adds the log of Mertens' weights to the logits, so a head whose last layer
    starts at zero starts as exactly the ``mertens`` method and learns corrections to it;
    ``keep_balance`` centres each exposure's logits over the image, so the prior keeps setting how
    much each exposure contributes overall and training only redistributes it from place to place;
    ``fine_levels=n`` lets the learned weights choose the detail of the n finest pyramid levels only,
    the prior's weights the coarser levels and so the tones; ``prior_shift`` tilts the prior from the
    darkest exposure (0) to the brightest (``prior_shift``, a log weight), so a negative shift keeps
    more of the darker exposures' tones; ``shadow_fill`` mixes in the brightest exposure where the
    blend would leave black what it shows (:class:`ShadowFill`); ``refine``, when fusing without
    gradients, corrects the weights of each pyramid level for each image before they are used (``mef_opt``'s ascent, see
    ``refine_steps`` of the student presets); ``mode="pyramid"`` blends in a Laplacian pyramid,
    ``"direct"`` per pixel.
    """

    def __init__(
        self, mode: str = "pyramid", prior: str = "mertens", levels: int | None = None, keep_balance: bool = False,
        fine_levels: int | None = None, prior_shift: float = 0.0, shadow_fill: bool = False, refine: Refiner | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(shadow_fill, bool):
            raise ComponentOptionError(f"shadow_fill must be true or false, got {shadow_fill!r}")
        if mode not in BLEND_MODES:
            raise ComponentOptionError(f"blend mode must be one of {', '.join(BLEND_MODES)}; got {mode!r}")
        if prior not in PRIORS:
            raise ComponentOptionError(f"blend prior must be one of {', '.join(PRIORS)}; got {prior!r}")
        if fine_levels is not None and (mode != "pyramid" or prior != "mertens"):
            raise ComponentOptionError(
                "fine_levels keeps the prior's tones: it needs blend mode 'pyramid' and prior 'mertens' "
                "(pass fine_levels=null to let the learned weights choose every level)"
            )
        if isinstance(prior_shift, bool) or not isinstance(prior_shift, (int, float)) or not math.isfinite(prior_shift):
            raise ComponentOptionError(f"prior_shift must be a number, got {prior_shift!r}")
        if prior_shift and prior != "mertens":
            raise ComponentOptionError("prior_shift tilts Mertens' weights: it needs prior 'mertens'")
        if refine is not None and (mode != "pyramid" or prior != "mertens"):
            raise ComponentOptionError("refining the logits optimises a pyramid blend on Mertens' weights: it needs blend mode 'pyramid' and prior 'mertens'")
        self.mode, self.prior, self.levels, self.keep_balance, self.fine_levels = mode, prior, levels, keep_balance, fine_levels
        self.prior_shift = float(prior_shift)
        self.shadow_fill = ShadowFill() if shadow_fill else None
        self.refine = refine

    def weights(self, exposures: Tensor, logits: Tensor, prior: Tensor | None = None, logit_means: Tensor | None = None) -> Tensor:
        """Weights (N, K, 1, H, W) that sum to one over the exposures (``prior``: Mertens' weights, if known;
        ``logit_means``: each exposure's mean logit over the whole image, for ``keep_balance`` on a strip)."""
        logits = logits.float()[:, :, None]
        if self.keep_balance:
            logits = logits - (logits.mean(dim=(-2, -1), keepdim=True) if logit_means is None else logit_means)
        if self.prior != "mertens":
            return torch.softmax(logits, dim=1)
        prior = prior if prior is not None else self.prior_weights(exposures)
        if torch.is_grad_enabled() and logits.requires_grad:
            return torch.softmax(logits + prior.log(), dim=1)
        # softmax(logits + log prior) = prior * exp(logits) / sum, in place: one buffer.
        weights = (logits - logits.amax(dim=1, keepdim=True)).exp_().mul_(prior)
        return weights.div_(weights.sum(dim=1, keepdim=True))

    def prior_weights(self, images: Tensor) -> Tensor:
        """Mertens' weights of (N, K, 3, H, W) exposures, tilted by ``prior_shift`` from darkest to brightest."""
        return _tilted(mertens_weights(images), self.tilt(images))

    def tilt(self, images: Tensor) -> Tensor | None:
        """Each exposure's prior factor (N, K, 1, 1, 1), exp(``prior_shift``) for the brightest; ``None`` without a shift."""
        k = images.shape[1]
        if not self.prior_shift or k < 2:
            return None
        rank = images.mean(dim=(2, 3, 4)).argsort(dim=1).argsort(dim=1)  # 0 for the darkest exposure
        return (rank.float() * (self.prior_shift / (k - 1))).exp()[..., None, None, None]

    def forward(self, exposures: Tensor, logits: Tensor | LogitRows, correction: LevelCorrection | None = None) -> Tensor:
        """Fuse (N, K, 3, H, W) exposures by logits (N, K, H, W), or by ``logits_of(top, bottom)`` giving their rows,
        the weights of each pyramid level corrected by ``correction`` (or by ``refine``'s, when fusing).

        Without gradients the photos are blended strip by strip (:func:`blend_rows`), asking for the
        logits a strip at a time, so neither logits nor weights exist at full resolution (unless refined).
        """
        images = exposures.float()
        tracked = images.requires_grad or (isinstance(logits, Tensor) and logits.requires_grad)
        if not (torch.is_grad_enabled() and tracked):
            if self.refine is not None and correction is None:
                logits = _whole(logits, images.shape[-2]).float()
                correction = self.refine(images, logits, self)
            logits_of = logits if callable(logits) else (lambda top, bottom: logits[..., top:bottom, :])
            fused = self._blend_rows(images, logits_of, correction)
        else:
            fused = self._blend_tracked(images, logits, correction)
        return fused if self.shadow_fill is None else self.shadow_fill(fused, images)

    def _blend_tracked(self, images: Tensor, logits: Tensor | LogitRows, correction: LevelCorrection | None) -> Tensor:
        """:meth:`forward` with gradients: whole-image weights."""
        logits = _whole(logits, images.shape[-2])
        prior = self.prior_weights(images) if self.prior == "mertens" else None
        weights = self.weights(images, logits, prior)
        if self.mode == "direct":
            return (images * weights).sum(dim=1).clamp(0, 1)
        coarse = prior if self.fine_levels is not None else None  # the prior keeps the coarse levels
        return pyramid_blend(images, weights, self.levels, coarse, self.fine_levels or 0, correction).clamp(0, 1)

    def _blend_rows(self, images: Tensor, logits_of: LogitRows, correction: LevelCorrection | None) -> Tensor:
        """:meth:`forward` without gradients: weights made strip by strip; the tilt and mean logits come from the whole image."""
        tilt = self.tilt(images) if self.prior == "mertens" else None
        logit_means = _mean_rows(logits_of, *images.shape[-2:]) if self.keep_balance else None

        def weights_of(top: int, bottom: int) -> tuple[Tensor, Tensor | None]:
            strip = images[..., top:bottom, :]
            prior = _tilted(mertens_weights(strip), tilt) if self.prior == "mertens" else None
            weights = self.weights(strip, logits_of(top, bottom), prior, logit_means)
            return weights, prior if self.fine_levels is not None else None  # the prior keeps the coarse levels

        levels = 0 if self.mode == "direct" else self.levels
        return blend_rows(images, weights_of, levels, self.fine_levels or 0, correction).clamp_(0, 1)


def _whole(logits: Tensor | LogitRows, height: int) -> Tensor:
    """Logits of every row: as given, or asked for all at once."""
    return logits(0, height) if callable(logits) else logits


def _tilted(prior: Tensor, tilt: Tensor | None) -> Tensor:
    """Mertens' weights times each exposure's tilt, normalised again (in place)."""
    if tilt is None:
        return prior
    tilted = prior.mul_(tilt)
    return tilted.div_(tilted.sum(dim=1, keepdim=True))


def _mean_rows(logits_of: LogitRows, height: int, width: int) -> Tensor:
    """Each exposure's mean logit (N, K, 1, 1, 1) over the whole image, read a strip at a time."""
    total = sum(logits_of(top, min(top + STRIP_ROWS, height)).float().sum(dim=(-2, -1)) for top in range(0, height, STRIP_ROWS))
    return (total / (height * width))[:, :, None, None, None]
