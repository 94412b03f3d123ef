"""Laplacian-pyramid blending of exposures by per-pixel weights (Burt & Adelson; Mertens et al.).

Each exposure's detail at each scale is weighted by the Gaussian pyramid of its weights, so seams
between regions taken from different exposures vanish. Three schedules give the same image:
small brackets go down the pyramid all at once (few, larger operations); large ones are blended
strip by strip, each pyramid level's finest band from a few rows at a time, so the working set
stays in cache and full-resolution weights never exist; with gradients, one exposure at a time.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor

from .pyramid import pyr_down, pyr_up

#: Below this many values per exposure (N x 3 x H x W), all exposures go down the pyramid together:
#: a few larger operations beat many small ones; above it, a level is blended in strips.
AT_ONCE_VALUES = 3 << 20
#: Rows of a large level blended at a time, and rows of context read above and below each strip:
#: a band's pixel depends on the rows within four of it, so eight keep every kept row exact.
STRIP_ROWS = 128
HALO = 8
#: On a GPU strips are there to bound memory, so they are tall: few kernel launches (not yet timed on a GPU).
GPU_STRIP_ROWS = 1024

#: ``weights_of(top, bottom)`` -> the weights (N, K, 1, bottom - top, W) of rows top:bottom, and
#: the coarse weights of those rows (or ``None``), both normalised over the K exposures. Rows next
#: to ``top`` and ``bottom`` may be inexact (a strip's weights may look at neighbours it lacks): the
#: blend reads :data:`HALO` rows beyond the rows it keeps.
WeightRows = Callable[[int, int], "tuple[Tensor, Tensor | None]"]
#: ``correction(level, top, bottom)`` -> logits (N, K, 1, bottom - top, W) added to the learned weights of rows
#: top:bottom of pyramid level ``level`` (0 the finest) where they weigh that level's band, or ``None`` to keep
#: them; the weights going down the pyramid are the uncorrected ones, so each level is corrected on its own.
LevelCorrection = Callable[[int, int, int], "Tensor | None"]


def pyramid_levels(height: int, width: int) -> int:
    """OpenCV's pyramid depth for MergeMertens: log2 of the shorter side."""
    return int(math.log2(min(height, width)))


def level_sizes(size: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """(height, width) of the ``count`` finest levels of a pyramid of an image of ``size`` (each half, rounded up)."""
    sizes = [tuple(size)]
    while len(sizes) < count:
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    return sizes[:count]


def at_once(exposures: Tensor) -> bool:
    """Whether all exposures are processed together: small brackets, where per-operation overhead dominates."""
    return exposures[:, 0].numel() <= AT_ONCE_VALUES


def pyramid_blend(
    exposures: Tensor, weights: Tensor, levels: int | None = None, coarse_weights: Tensor | None = None, fine_levels: int = 0,
    correction: LevelCorrection | None = None,
) -> Tensor:
    """Blend (N, K, C, H, W) exposures with (N, K, 1, H, W) normalised weights in a Laplacian pyramid.

    With ``coarse_weights``, only the ``fine_levels`` finest levels use ``weights``; the coarser ones
    and the base, which set the picture's tones, use ``coarse_weights``. Without gradients this is
    :func:`blend_rows`; with them, exposures are decomposed one at a time into a running sum of
    weighted pyramids, so memory grows with one exposure, not K. ``correction`` corrects the learned
    weights level by level (:data:`LevelCorrection`); with gradients all exposures then go down together.
    """
    levels = pyramid_levels(*exposures.shape[-2:]) if levels is None else levels
    tracked = (exposures, weights) if coarse_weights is None else (exposures, weights, coarse_weights)
    if not torch.is_grad_enabled():
        return blend_rows(exposures, rows_of(weights, coarse_weights), levels, fine_levels, correction)
    if correction is not None:
        return corrected_blend(exposures, weights, coarse_weights, levels, fine_levels)(correction)
    if not any(t.requires_grad for t in tracked):
        return blend_rows(exposures, rows_of(weights, coarse_weights), levels, fine_levels)
    bands: list[Tensor] = []
    for k in range(exposures.shape[1]):
        coarse = None if coarse_weights is None else coarse_weights[:, k]
        _add_weighted_pyramid(bands, exposures[:, k], weights[:, k], coarse, levels, fine_levels)
    return _collapse(bands)


def rows_of(weights: Tensor, coarse: Tensor | None = None) -> WeightRows:
    """:data:`WeightRows` reading from whole weight maps."""
    return lambda top, bottom: (weights[..., top:bottom, :], None if coarse is None else coarse[..., top:bottom, :])


@torch.no_grad()
def blend_rows(
    exposures: Tensor, weights_of: WeightRows, levels: int | None = None, fine_levels: int = 0, correction: LevelCorrection | None = None
) -> Tensor:
    """:func:`pyramid_blend` with the weights asked for a strip at a time (``weights_of``); no gradients.

    A large level is blended in strips of :data:`STRIP_ROWS` rows (read with :data:`HALO` rows of
    context): each strip's finest band goes straight into the output and its half-resolution
    exposures and weights into the next level, which is blended the same way and added back strip
    by strip. Every operation is local, so the result equals the whole-image blend. ``correction``: see
    :data:`LevelCorrection`.
    """
    height, width = exposures.shape[-2:]
    levels = pyramid_levels(height, width) if levels is None else levels
    if at_once(exposures):
        weights, coarse = weights_of(0, height)
        return _blend_at_once(exposures, weights, coarse, levels, fine_levels, correction)
    if levels == 0:
        return _per_pixel_in_strips(exposures, weights_of, fine_levels, correction)
    fused, smaller, smaller_maps, learned_below = _finest_band_in_strips(exposures, weights_of, fine_levels, correction)
    deeper = _one_level_down(correction) if learned_below else None
    coarser = blend_rows(smaller, rows_of(*smaller_maps), levels - 1, max(fine_levels - 1, 0), deeper)
    for top, bottom, start, stop in _strips(height, exposures.device):
        part = coarser[..., _half(start, stop), :]
        fused[..., top:bottom, :] += pyr_up(part, (stop - start, width))[..., top - start : bottom - start, :]
    return fused


def _one_level_down(correction: LevelCorrection | None) -> LevelCorrection | None:
    """``correction`` for the pyramid one level down, whose level 0 is this one's level 1."""
    return None if correction is None else (lambda level, top, bottom: correction(level + 1, top, bottom))


def _corrected(weights: Tensor, correction: LevelCorrection | None, level: int, top: int, bottom: int) -> Tensor:
    """Learned weights of rows top:bottom of ``level`` with that level's correction: softmax(log weights + correction)."""
    logits = None if correction is None else correction(level, top, bottom)
    if logits is None:
        return weights
    scaled = weights * (logits - logits.amax(dim=1, keepdim=True)).exp()
    return scaled / scaled.sum(dim=1, keepdim=True)


def corrected_blend(
    exposures: Tensor, weights: Tensor, coarse: Tensor | None = None, levels: int | None = None, fine_levels: int = 0
) -> Callable[[LevelCorrection | None], Tensor]:
    """:func:`pyramid_blend` as a function of a level correction, with gradients (to the correction, and to the
    exposures and weights where they need them): the exposures' bands and the weights' pyramid are made once, so an
    ascent on the correction redoes only the weighting and the collapse. All exposures go down together."""
    levels = pyramid_levels(*exposures.shape[-2:]) if levels is None else levels
    learned_levels = levels + 1 if coarse is None else min(fine_levels, levels + 1)
    bands: list[Tensor] = []
    level_weights: list[Tensor] = []
    image = exposures
    for level in range(levels + 1):
        level_weights.append(weights if level < learned_levels else coarse)
        if level < levels:
            smaller = pyr_down(image)
            bands.append(image - pyr_up(smaller, image.shape[-2:]))
            image, weights = smaller, pyr_down(weights) if level + 1 < learned_levels else weights
            coarse = None if coarse is None else pyr_down(coarse)
        else:
            bands.append(image)

    def blend(correction: LevelCorrection | None) -> Tensor:
        return _collapse([
            (band * (_corrected(w, correction, level, 0, band.shape[-2]) if level < learned_levels else w)).sum(dim=1)
            for level, (band, w) in enumerate(zip(bands, level_weights))
        ])

    return blend


def _per_pixel_in_strips(exposures: Tensor, weights_of: WeightRows, fine_levels: int, correction: LevelCorrection | None) -> Tensor:
    """A pyramid of no levels: the weighted sum of the exposures, a strip at a time."""
    n, _, channels, height, width = exposures.shape
    fused = exposures.new_empty(n, channels, height, width)
    for top, bottom, start, stop in _strips(height, exposures.device):
        weights, coarse = weights_of(start, stop)  # with context: weights may look at neighbours
        learned = coarse is None or fine_levels > 0
        level_weights = (weights if learned else coarse)[..., top - start : bottom - start, :]
        level_weights = _corrected(level_weights, correction, 0, top, bottom) if learned else level_weights
        fused[..., top:bottom, :] = exposures[..., top:bottom, :].mul(level_weights).sum(dim=1)
    return fused


def _finest_band_in_strips(
    exposures: Tensor, weights_of: WeightRows, fine_levels: int, correction: LevelCorrection | None
) -> tuple[Tensor, Tensor, list[Tensor], bool]:
    """The weighted finest Laplacian band (N, C, H, W), the next level's exposures and weight maps, and whether
    the levels below use learned weights.

    The weight maps are the weights, the coarse weights, or both, as the levels below need them.
    """
    n, k, channels, height, width = exposures.shape
    fused = exposures.new_empty(n, channels, height, width)
    half = ((height + 1) // 2, (width + 1) // 2)
    smaller = exposures.new_empty(n, k, channels, *half)
    smaller_maps: list[Tensor] = []
    learned_below = True
    for top, bottom, start, stop in _strips(height, exposures.device):
        strip = exposures[..., start:stop, :]
        weights, coarse = weights_of(start, stop)
        kept, half_rows, half_kept = slice(top - start, bottom - start), _half(top, bottom), _half(top - start, bottom - start)
        down = pyr_down(strip)
        upsampled = pyr_up(down, strip.shape[-2:])[..., kept, :]
        detail = torch.sub(strip[..., kept, :], upsampled, out=upsampled)
        if coarse is None or fine_levels > 0:
            level_weights = _corrected(weights[..., kept, :], correction, 0, top, bottom)
        else:
            level_weights = coarse[..., kept, :]
        fused[..., top:bottom, :] = detail.mul_(level_weights).sum(dim=1)
        smaller[..., half_rows, :] = down[..., half_kept, :]
        # Past fine_levels the levels below use only the coarse weights.
        maps = (weights,) if coarse is None else (coarse,) if fine_levels <= 1 else (weights, coarse)
        learned_below = coarse is None or fine_levels > 1
        for index, level_map in enumerate(maps):
            if len(smaller_maps) <= index:
                smaller_maps.append(exposures.new_empty(n, k, 1, *half))
            smaller_maps[index][..., half_rows, :] = pyr_down(level_map)[..., half_kept, :]
    return fused, smaller, smaller_maps, learned_below


def _strips(height: int, device: torch.device) -> Iterator[tuple[int, int, int, int]]:
    """(top, bottom) of each strip of rows with the (start, stop) it reads, context included; all starts even."""
    rows = STRIP_ROWS if device.type == "cpu" else GPU_STRIP_ROWS
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        yield top, bottom, max(top - HALO, 0), min(bottom + HALO, height)


def _half(top: int, bottom: int) -> slice:
    """The rows of the half-resolution level that rows top:bottom (``top`` even) go down to."""
    return slice(top // 2, (bottom + 1) // 2)


def _blend_at_once(
    exposures: Tensor, weights: Tensor, coarse: Tensor | None, levels: int, fine_levels: int, correction: LevelCorrection | None = None
) -> Tensor:
    """A small bracket's blend: exposures and weight maps go down the pyramid together, in one stack."""
    channels = exposures.shape[2]
    stack = torch.cat((exposures, weights) if coarse is None else (exposures, weights, coarse), dim=2)
    bands: list[Tensor] = []
    for level in range(levels + 1):
        image = stack[:, :, :channels]
        if coarse is None or level < fine_levels:
            level_weights = _corrected(stack[:, :, channels : channels + 1], correction, level, 0, image.shape[-2])
        else:
            level_weights = stack[:, :, -1:]
        if level < levels:
            smaller = pyr_down(stack)
            upsampled = pyr_up(smaller[:, :, :channels], image.shape[-2:])
            detail = torch.sub(image, upsampled, out=upsampled)
            stack = smaller
        else:
            detail = image.clone()
        bands.append(detail.mul_(level_weights).sum(dim=1))
    return _collapse(bands)


def _collapse(bands: list[Tensor]) -> Tensor:
    """The image whose Laplacian pyramid is ``bands`` (finest first, the base last)."""
    fused = bands.pop()
    for detail in reversed(bands):
        fused = pyr_up(fused, detail.shape[-2:]).add_(detail)
    return fused


def _add_weighted_pyramid(
    bands: list[Tensor], image: Tensor, weight: Tensor, coarse: Tensor | None, levels: int, fine_levels: int
) -> None:
    """Add one exposure's Laplacian pyramid, weighted by its weights' Gaussian pyramid, into ``bands`` (autograd)."""
    for level in range(levels + 1):
        level_weight = weight if coarse is None or level < fine_levels else coarse
        if level < levels:
            smaller = pyr_down(image)
            detail = image - pyr_up(smaller, image.shape[-2:])
            if coarse is None or level + 1 < fine_levels:  # past fine_levels only the coarse weights are used
                weight = pyr_down(weight)
            if coarse is not None:
                coarse = pyr_down(coarse)
            image = smaller
        else:
            detail = image
        weighted = detail * level_weight
        if len(bands) <= level:
            bands.append(weighted)
        else:
            bands[level] = bands[level] + weighted
