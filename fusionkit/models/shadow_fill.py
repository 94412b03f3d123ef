"""Shadow fill: a fusion never leaves black what the brightest exposure shows.

Where the brightest exposure's luma is between 10 % and 90 % but the fused luma is below a floor
(``floor`` times that luma, at most ``cap``: the shadow floor of the ``tones`` loss), the fused pixel is
mixed with the brightest exposure just enough to reach the floor. The mixing fraction is spread by a
``radius``-pixel maximum and a Gaussian blur of ``sigma``, so shadows come back with the bright exposure's
own detail instead of as a flat grey floor. A pyramid blend crushes such shadows where a region's coarse
weights come from the dark exposure and its fine detail from the bright one (docs/pretrained.md).
"""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from ..colour import brightest_exposure, gray
from ..errors import ComponentOptionError
from .laplacian_blend import GPU_STRIP_ROWS, STRIP_ROWS

#: Where the brightest exposure shows detail (its luma): the crushed-shadow measure's range.
SHOWN = (0.1, 0.9)


def luma_floor(lit: Tensor, floor: float = 0.3, cap: float = 0.05) -> Tensor:
    """The luma a fusion should not fall below: ``floor`` times the brightest exposure's luma ``lit``, at most
    ``cap``, where that exposure shows detail (:data:`SHOWN`); 0 elsewhere. The ``tones`` loss's shadow floor too."""
    return torch.where((lit >= SHOWN[0]) & (lit <= SHOWN[1]), (floor * lit).clamp(max=cap), 0.0)


class ShadowFill:
    """``fill(fused, exposures)``: (N, 3, H, W) fused and (N, K, 3, H, W) exposures in [0, 1] -> filled fusion
    (without gradients ``fused`` itself, filled in place a strip of rows at a time)."""

    def __init__(self, floor: float = 0.3, cap: float = 0.05, radius: int = 4, sigma: float = 2.0) -> None:
        if not (0 < floor <= 1 and 0 < cap <= 1):
            raise ComponentOptionError(f"shadow fill: floor and cap must be in (0, 1]; got {floor!r}, {cap!r}")
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0 or not sigma >= 0:
            raise ComponentOptionError(f"shadow fill: radius must be a whole number >= 0 and sigma >= 0; got {radius!r}, {sigma!r}")
        self.floor, self.cap, self.radius, self.sigma = float(floor), float(cap), radius, float(sigma)

    @property
    def reach(self) -> int:
        """Rows around a pixel whose shortfall can lift it."""
        return self.radius + math.ceil(3 * self.sigma)

    def __call__(self, fused: Tensor, exposures: Tensor) -> Tensor:
        bright = brightest_exposure(exposures)
        if torch.is_grad_enabled() and (fused.requires_grad or exposures.requires_grad):
            fraction = self.fraction(fused, bright)
            return fused if fraction is None else fused + fraction * (bright - fused)
        height, reach = fused.shape[-2], self.reach
        rows = STRIP_ROWS if fused.device.type == "cpu" else GPU_STRIP_ROWS
        fractions = []
        for top in range(0, height, rows):  # the fractions first: each reads the unfilled rows around it
            start, bottom, stop = max(top - reach, 0), min(top + rows, height), min(top + rows + reach, height)
            fraction = self.fraction(fused[..., start:stop, :], bright[..., start:stop, :])
            if fraction is not None:
                fractions.append((top, bottom, fraction[..., top - start : bottom - start, :]))
        for top, bottom, fraction in fractions:
            kept = fused[..., top:bottom, :]
            kept.add_(fraction * (bright[..., top:bottom, :] - kept))
        return fused

    def fraction(self, fused: Tensor, bright: Tensor) -> Tensor | None:
        """How much (N, 1, H, W) of the brightest exposure each pixel takes: the least that lifts it to the floor,
        spread; ``None`` where no pixel falls short (most strips of most photographs: nothing to spread)."""
        lit, luma = gray(*bright.float().unbind(-3))[:, None], gray(*fused.float().unbind(-3))[:, None]
        shortfall = (luma_floor(lit, self.floor, self.cap) - luma).relu()
        if not shortfall.requires_grad and not shortfall.any():
            return None
        needed = (shortfall / (lit - luma).clamp_min(1e-6)).clamp(0, 1)
        if self.radius:
            needed = F.max_pool2d(needed, 2 * self.radius + 1, stride=1, padding=self.radius)
        if self.sigma:
            size = 2 * math.ceil(3 * self.sigma) + 1
            needed = kornia.filters.gaussian_blur2d(needed, (size, size), (self.sigma, self.sigma), border_type="replicate")
        return needed

