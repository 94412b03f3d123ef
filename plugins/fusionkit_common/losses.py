"""Loss components: weighted terms ``fusionkit train`` composes into the student's objective.

A loss module maps fused images (N, 3, H, W) in [0, 1], the exposures (N, K, 3, H, W) and the
reference (or None) to a scalar; ``needs_reference`` says whether it can train on data without one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fusionkit.errors import ComponentOptionError
from fusionkit.evaluation.mef_ssim import SCALE_WEIGHTS, WINDOW, mef_ssim
from fusionkit.models.blend import GRAY
from fusionkit.training.perceptual import build_perceptual_loss



class L1Reconstruction(nn.Module):
    """Mean absolute error to the reference (the paper's L_rec, which it takes in [-1, 1]: twice this)."""

    needs_reference = True

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor:
        return (fused.float() - reference.float()).abs().mean()


class Perceptual(nn.Module):
    """L1 between VGG19 features of fused and reference (the paper's L_perc); off without weights."""

    needs_reference = True

    def __init__(self, vgg_weights: str | None = None) -> None:
        super().__init__()
        self.vgg, self.note = build_perceptual_loss(vgg_weights)

    @property
    def available(self) -> bool:
        return self.vgg is not None

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor:
        return self.vgg(fused.float(), reference.float())


class MEFSSIMLoss(nn.Module):
    """1 - MEF-SSIM of the fused image against its exposures: trains without any reference (MEF-Net).

    ``space="luma"`` scores the BT.601 luma (as the metric does), ``"rgb"`` each channel and averages.
    Crops too small for three scales of 11-px windows use the scales that fit.
    """

    needs_reference = False

    def __init__(self, space: str = "luma") -> None:
        super().__init__()
        if space not in ("luma", "rgb"):
            raise ComponentOptionError(f"loss 'mef_ssim': space must be 'luma' or 'rgb', got {space!r}")
        self.space = space

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor:
        fused, exposures = fused.float(), exposures.float()
        if self.space == "luma":
            luma = torch.tensor(GRAY, device=fused.device).view(3, 1, 1)
            f, x = (fused * luma).sum(-3, keepdim=True), (exposures * luma).sum(-3, keepdim=True)
        else:
            f, x = fused.flatten(0, 1)[:, None], exposures.transpose(1, 2).flatten(0, 1)[:, :, None]
        scales = max(1, min(len(SCALE_WEIGHTS), int(math.log2(min(f.shape[-2:]) / WINDOW)) + 1))
        return 1 - mef_ssim(f, x, data_range=1.0, window=WINDOW, scales=scales, weights=SCALE_WEIGHTS[:scales]).mean()
