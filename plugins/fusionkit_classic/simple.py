"""The simplest baselines: the plain average, and an oracle that picks the best input."""

from __future__ import annotations

import torch

from fusionkit.api import psnr

from .base import ExposureShapeError, FusionMethod, ReferenceRequiredError


class Mean(FusionMethod):
    """Per-pixel average of the exposures: the floor any fusion method should beat."""

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        return exposures.mean(dim=1)


class BestInput(FusionMethod):
    """Oracle: per image, the input exposure with the highest PSNR against the ground truth."""

    needs_reference = True

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        if reference is None:
            raise ReferenceRequiredError("method 'best_input' is an oracle and needs the ground-truth reference")
        n, k = exposures.shape[:2]
        if reference.shape != (n, *exposures.shape[2:]):
            raise ExposureShapeError(
                f"reference must be shaped {(n, *exposures.shape[2:])} to match the exposures; "
                f"got {tuple(reference.shape)}"
            )
        scores = psnr(exposures.flatten(0, 1), reference.repeat_interleave(k, dim=0)).view(n, k)
        return exposures[torch.arange(n, device=exposures.device), scores.argmax(dim=1)]
