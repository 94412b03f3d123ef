"""The contract every training-free method shares: (N, K, 3, H, W) exposures in, (N, 3, H, W) out."""

from __future__ import annotations

import torch
from torch import nn

from fusionkit.api import FusionkitError


class ExposureShapeError(FusionkitError, ValueError):
    """Exposures (or a reference) that do not have the shape a fusion method takes."""


class ReferenceRequiredError(FusionkitError, ValueError):
    """An oracle method was called without the ground truth it picks against."""


class FusionMethod(nn.Module):
    """Base for training-free methods: checks the input contract, then calls ``fuse``."""

    #: True only for oracles that look at the ground truth.
    needs_reference: bool = False

    def forward(self, exposures: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        if exposures.dim() != 5 or exposures.shape[2] != 3 or 0 in exposures.shape:
            raise ExposureShapeError(
                f"{type(self).__name__} takes exposures shaped (N, K, 3, H, W); got {tuple(exposures.shape)}"
            )
        if not exposures.is_floating_point():
            raise ExposureShapeError(f"{type(self).__name__} takes float exposures in [0, 1]; got {exposures.dtype}")
        return self.fuse(exposures, reference)

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError
