"""Deghosting: what moved between exposures comes from one reference exposure, so a fusion shows it once.

For each other exposure, the reference is mapped to that exposure's tones by monotone curves (per bin of
the reference's values, the median of the exposure's). Their lumas disagree where the difference after
matching, less what a one-pixel shift explains, exceeds ``threshold`` times the noise of that tone (the
median absolute residual of the bin over the whole image). That mask, found at ``work_size``, cleaned and
feathered, blends the exposure towards the tone-mapped reference, channel by channel. Where the mask is
zero, pixels stay bit-identical; where the reference is clipped it has nothing to lend and the exposure
keeps its own pixels, unless the mapped reference is clipped alike (the exposure is then clipped there too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from torch import Tensor

from ..colour import luma
from ..errors import FusionkitError, param

#: Differences beyond this many times the tone's noise level (after allowing for a one-pixel shift) are motion.
THRESHOLD = 6.0
#: Long side at which the mask is found (larger photos are shrunk by area averaging).
WORK_SIZE = 512
#: A channel is clipped at or below LOW and at or above HIGH, and fully trusted RAMP inside.
LOW, HIGH, RAMP = 0.02, 0.98, 0.02
#: Bins of the tone curve, and the fewest pixels a bin needs to give a knot.
BINS, MIN_PIXELS = 64, 16
#: Smallest noise level (half an 8-bit step), so flat or clipped tones do not flag every difference.
NOISE_FLOOR = 0.5 / 255
#: Mask cleaning at the work size: opening and closing radii, dilation radius, feather sigma (pixels).
OPEN, CLOSE, GROW, FEATHER = 1, 2, 3, 2.0


@dataclass
class DeghostResult:
    """Exposures (1, K, 3, H, W) with moving content taken from ``reference``; ``masks`` (K, H, W) in [0, 1]
    say how much of each exposure was replaced (the reference's own is zero)."""

    exposures: Tensor
    masks: Tensor
    reference: int


def deghost(
    exposures: Tensor, reference: int | None = None, *, threshold: float = THRESHOLD, work_size: int = WORK_SIZE
) -> DeghostResult:
    """Aligned exposures (1, K, 3, H, W) in [0, 1] -> the same with each one showing the reference's content
    where something moved; ``reference`` None picks :func:`best_exposed`. Lower ``threshold`` finds fainter motion."""
    if exposures.dim() != 5 or exposures.shape[0] != 1 or exposures.shape[2] != 3 or 0 in exposures.shape:
        raise FusionkitError(f"deghosting takes exposures shaped (1, K, 3, H, W); got {tuple(exposures.shape)}")
    if not exposures.is_floating_point():
        raise FusionkitError(f"deghosting takes float exposures in [0, 1]; got {exposures.dtype}")
    count = exposures.shape[1]
    if reference is not None and not 0 <= reference < count:
        raise FusionkitError(f"{param('reference')} must be an exposure index from 0 to {count - 1}; got {reference}")
    if not threshold > 0:
        raise FusionkitError(f"{param('threshold')} must be above 0; got {threshold}")
    if work_size < 16:
        raise FusionkitError(f"{param('work_size')} must be at least 16 pixels; got {work_size}")
    stack = exposures[0]
    small = _shrink(stack.float(), work_size)
    reference = best_exposed(small) if reference is None else reference
    out, masks = stack.clone(), torch.zeros(count, *stack.shape[-2:], device=stack.device)
    for k in range(count):
        if k == reference:
            continue
        curves = [_fit_curve(small[reference, c], small[k, c]) for c in range(3)]
        lendable = _lendable(small[reference], _mapped(small[reference], curves)) > 0
        motion = _motion(luma(small[reference]), luma(small[k]))
        mask = _feathered(_cleaned((motion > threshold) & lendable), stack.shape[-2:])
        if mask.any():
            full = _mapped(stack[reference].float(), curves)
            mask = mask * _lendable(stack[reference].float(), full)
            out[k] = torch.where(mask > 0, torch.lerp(stack[k].float(), full, mask).to(stack.dtype), stack[k])
            masks[k] = mask
    return DeghostResult(out.unsqueeze(0), masks, reference)


def best_exposed(stack: Tensor) -> int:
    """Index of the exposure (K, 3, H, W) with the most unclipped pixels (the reference can lend the most),
    ties going to the mean luma nearest mid-grey."""
    unclipped = [_unclipped(image).mean().item() for image in stack]
    grey = [abs(luma(image).mean().item() - 0.5) for image in stack]
    return min(range(len(stack)), key=lambda k: (-unclipped[k], grey[k]))


def _shrink(stack: Tensor, work_size: int) -> Tensor:
    """(K, 3, H, W) -> long side at most ``work_size``, by area averaging."""
    scale = work_size / max(stack.shape[-2:])
    if scale >= 1:
        return stack
    size = (max(1, round(stack.shape[-2] * scale)), max(1, round(stack.shape[-1] * scale)))
    return F.interpolate(stack, size=size, mode="area")


def _lendable(reference: Tensor, mapped: Tensor) -> Tensor:
    """(H, W) in [0, 1]: where the reference (3, H, W) can stand in for the exposure it is ``mapped`` to: no
    channel clipped, or clipped alike in the mapped image (that exposure is then clipped there too)."""
    (high, low), (high_mapped, low_mapped) = _clipped(reference), _clipped(mapped)
    return (1 - high * (1 - high_mapped) - low * (1 - low_mapped)).amin(0)


def _unclipped(image: Tensor) -> Tensor:
    """(3, H, W) -> (H, W) in [0, 1]: 0 where a channel is clipped, 1 where every channel is RAMP inside."""
    high, low = _clipped(image)
    return (1 - high - low).amin(0)


def _clipped(image: Tensor) -> tuple[Tensor, Tensor]:
    """How far each value is clipped, bright and dark: 1 past the clipping level, 0 from RAMP short of it."""
    return ((image - HIGH) / RAMP + 1).clamp(0, 1), ((LOW - image) / RAMP + 1).clamp(0, 1)


def _motion(source: Tensor, target: Tensor) -> Tensor:
    """Luma (h, w) of the reference and an exposure -> their difference after tone matching, less what a one-pixel
    shift explains, in units of the tone's noise level."""
    x, y = _fit_curve(source, target)
    mapped = _clip(_interp(source, x, y))
    noise = _interp(source.clamp(x[0], x[-1]), x, _noise_levels(source, target, x, y))
    target = _clip(target)
    shift = torch.minimum(_local_range(mapped), _local_range(target))
    return ((target - mapped).abs() - shift) / noise


def _mapped(reference: Tensor, curves: list[tuple[Tensor, Tensor]]) -> Tensor:
    """The reference (3, H, W) in another exposure's tones, each channel through its curve."""
    return torch.stack([_interp(channel, *curve) for channel, curve in zip(reference, curves)]).clamp(0, 1)


def _clip(image: Tensor) -> Tensor:
    """Values clamped to the unclipped range, so two clipped pixels agree whatever lies beyond."""
    return image.clamp(LOW, HIGH)


def _fit_curve(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Knots (x, y) of a monotone curve mapping ``source`` (H, W) values to ``target``'s: per bin of
    ``source``, the median of each (bins with too few pixels give none)."""
    bins = _bins(source)
    x, pixels = _bin_medians(bins, source.flatten())
    y, _ = _bin_medians(bins, target.flatten())
    keep = pixels >= min(MIN_PIXELS, int(pixels.max()))
    return x[keep], y[keep].cummax(0).values


def _noise_levels(source: Tensor, target: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Noise level of ``target`` at each knot x of its curve: 1.4826 times the median absolute residual
    (both sides clipped) in the knot's bin of ``source``."""
    residual = (_clip(target) - _clip(_interp(source, x, y))).abs()
    mad, _ = _bin_medians(_bins(source), residual.flatten())
    return (1.4826 * mad[_bins(x)]).clamp_min(NOISE_FLOOR)


def _bins(values: Tensor) -> Tensor:
    return (values * BINS).long().clamp(0, BINS - 1).flatten()


def _bin_medians(bins: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Lower median of ``values`` in [0, 1] within each of BINS ``bins`` (same shape, ints) -> (BINS,) medians
    and pixel counts, in one sort: bin b's values sort between 2b and 2b + 1."""
    keys = torch.sort(bins.double() * 2 + values.double()).values
    pixels = torch.bincount(bins, minlength=BINS)
    middle = (pixels.cumsum(0) - pixels + (pixels - 1).clamp_min(0) // 2).clamp_max(len(keys) - 1)
    offsets = 2 * torch.arange(BINS, device=bins.device, dtype=torch.float64)
    return (keys[middle] - offsets).float(), pixels


def _interp(values: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Piecewise-linear curve through knots (x, y), x increasing, at ``values``; the end pieces extend beyond."""
    if len(x) == 1:
        return torch.full_like(values, y.item())
    right = torch.searchsorted(x, values.contiguous()).clamp(1, len(x) - 1)
    x0, x1, y0, y1 = x[right - 1], x[right], y[right - 1], y[right]
    return torch.lerp(y0, y1, (values - x0) / (x1 - x0))


def _local_range(image: Tensor) -> Tensor:
    """(h, w) -> the spread (max - min) of each pixel's 3x3 neighbourhood: what a one-pixel shift can change."""
    image = image[None, None]
    return (_dilate(image, 1) + _dilate(-image, 1))[0, 0]


def _cleaned(flags: Tensor) -> Tensor:
    """Binary (h, w) mask opened (drops specks of noise), closed (fills holes) and grown over the edges of what moved."""
    mask = flags.float()[None, None]
    mask = _dilate(-_dilate(-mask, OPEN), OPEN)
    mask = -_dilate(-_dilate(mask, CLOSE), CLOSE)
    return _dilate(mask, GROW)


def _dilate(mask: Tensor, radius: int) -> Tensor:
    return F.max_pool2d(mask, 2 * radius + 1, stride=1, padding=radius)


def _feathered(mask: Tensor, size: torch.Size) -> Tensor:
    """(1, 1, h, w) binary -> (H, W) soft mask: blurred, doubled so the grown region stays 1, upsampled."""
    if not mask.any():
        return torch.zeros(size, device=mask.device)
    radius = int(3 * FEATHER)
    soft = (2 * gaussian_blur2d(mask, (2 * radius + 1,) * 2, (FEATHER, FEATHER), border_type="replicate")).clamp_max(1)
    return F.interpolate(soft, size=size, mode="bilinear", align_corners=False)[0, 0]
