"""Bring low-resolution weight maps back to full resolution along the photographs' edges.

The fast guided filter (He & Sun, 2015), as MEF-Net uses it: the filter's local linear model
``q = a * I + b`` is fitted at the working resolution, its coefficients are upsampled bilinearly,
and applied to the full-resolution guide, so the maps follow edges finer than the network saw.
"""

from __future__ import annotations

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
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(t: Tensor) -> Tensor:
        return box_blur(t, size, border_type="reflect", separable=True)

    mean_guide, mean_maps = mean(guide_small), mean(maps)
    variance = mean(guide_small.square()).addcmul_(mean_guide, mean_guide, value=-1)
    covariance = mean(guide_small * maps).addcmul_(mean_guide, mean_maps, value=-1)
    a = covariance / (variance + eps)
    b = mean_maps.addcmul_(a, mean_guide, value=-1)
    a, b = mean(a), mean(b)
    if guide.shape[-2:] != a.shape[-2:]:
        a = F.interpolate(a, size=guide.shape[-2:], mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=guide.shape[-2:], mode="bilinear", align_corners=False)
    return b.addcmul_(a, guide)
