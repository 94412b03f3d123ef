"""Bring low-resolution weight maps back to full resolution along the photographs' edges.

The fast guided filter (He & Sun, 2015), as MEF-Net uses it: the filter's local linear model
``q = a * I + b`` is fitted at the working resolution, its coefficients are upsampled bilinearly,
and applied to the full-resolution guide, so the maps follow edges finer than the network saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import box_blur
from torch import Tensor

#: Box radius at the working resolution and regularisation (guides are luma in [0, 1]).
RADIUS = 1
EPS = 1e-3


def guided_upsample(maps: Tensor, guide_small: Tensor, guide: Tensor, radius: int = RADIUS, eps: float = EPS) -> Tensor:
    """Maps (N, C, h, w) with their guides (N, C, h, w) -> maps (N, C, H, W) following ``guide`` (N, C, H, W).

    Each channel has its own guide (one exposure's luma for that exposure's map). Where ``guide``
    has the working resolution this is exactly the guided filter (``kornia.filters.guided_blur``).
    """
    a, b = guided_coefficients(maps, guide_small, radius, eps)
    if guide.shape[-2:] != a.shape[-2:]:
        a = F.interpolate(a, size=guide.shape[-2:], mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=guide.shape[-2:], mode="bilinear", align_corners=False)
    return b.addcmul_(a, guide)


def guided_coefficients(maps: Tensor, guide_small: Tensor, radius: int = RADIUS, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """The guided filter's smoothed linear model (a, b), each (N, C, h, w): ``maps ~ a * guide + b`` locally."""
    size = (2 * radius + 1, 2 * radius + 1)
    # Reflecting needs more than ``radius`` pixels: a long thin photo's side at the work size can be 1 pixel.
    border = "reflect" if min(maps.shape[-2:]) > radius else "replicate"

    def mean(t: Tensor) -> Tensor:
        return box_blur(t, size, border_type=border, separable=True)

    mean_guide, mean_maps = mean(guide_small), mean(maps)
    variance = mean(guide_small.square()).addcmul_(mean_guide, mean_guide, value=-1)
    covariance = mean(guide_small * maps).addcmul_(mean_guide, mean_maps, value=-1)
    a = covariance / (variance + eps)
    b = mean_maps.addcmul_(a, mean_guide, value=-1)
    return mean(a), mean(b)


def guided_rows(a: Tensor, b: Tensor, guide_rows: Tensor, top: int, height: int) -> Tensor:
    """Rows ``top:top + R`` of :func:`guided_upsample` for an image ``height`` tall, from those rows' guide (N, C, R, W).

    The coefficients are interpolated bilinearly like ``F.interpolate`` (half-pixel centres): first
    the two source rows of each output row, then along the width; so a strip costs only its own rows.
    """
    rows, width = guide_rows.shape[-2:]
    source = (torch.arange(top, top + rows, dtype=torch.float32, device=a.device) + 0.5).mul_(a.shape[-2] / height).sub_(0.5).clamp_(min=0)
    upper = source.long()
    lower = (upper + 1).clamp_(max=a.shape[-2] - 1)
    fraction = (source - upper)[:, None]

    def upsampled(t: Tensor) -> Tensor:
        t_rows = torch.lerp(t.index_select(-2, upper), t.index_select(-2, lower), fraction)
        return F.interpolate(t_rows, size=(rows, width), mode="bilinear", align_corners=False)

    return upsampled(b).addcmul_(upsampled(a), guide_rows)
