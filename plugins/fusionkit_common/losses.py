"""Loss components: weighted terms ``fusionkit train`` composes into the student's objective.

A loss module maps fused images (N, 3, H, W) in [0, 1], the exposures (N, K, 3, H, W) and the
reference (or None) to a scalar; ``needs_reference`` says whether it can train on data without one.
"""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusionkit.api import GRAY, QABF_CONSTANTS, ComponentOptionError, brightest_luma, build_perceptual_loss, gray, luma_floor, mef_ssim
from fusionkit.api import mertens_weights, pyramid_blend
from fusionkit.api import MEF_SSIM_SCALE_WEIGHTS as SCALE_WEIGHTS
from fusionkit.api import MEF_SSIM_WINDOW as WINDOW



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


class ToneLoss(nn.Module):
    """Keeps Mertens' local tones and lifts the shadows that Mertens crushes (no reference needed).

    MEF-SSIM scores structure and contrast but not brightness, so a fusion trained on it alone may
    wash a scene out. Two terms: the mean absolute difference between the fused luma and Mertens'
    fusion's luma, both averaged over ``block`` x ``block`` pixels; and ``shadow_weight`` times the
    mean amount by which the fused luma falls below ``shadow_floor`` times the brightest exposure's
    luma (at most ``shadow_cap``), where that exposure is between 10 % and 90 %: detail it shows must
    not turn black, while the cap leaves the darker exposure's mid-tones alone.
    """

    needs_reference = False

    def __init__(self, block: int = 64, shadow_floor: float = 0.3, shadow_cap: float = 0.05, shadow_weight: float = 10.0) -> None:
        super().__init__()
        if not (isinstance(block, int) and block >= 1):
            raise ComponentOptionError(f"loss 'tones': block must be a whole number of pixels >= 1, got {block!r}")
        if not (0 <= shadow_floor <= 1 and 0 <= shadow_cap <= 1 and shadow_weight >= 0):
            raise ComponentOptionError("loss 'tones': shadow_floor and shadow_cap must be in [0, 1], shadow_weight >= 0")
        self.block, self.shadow_floor, self.shadow_cap = block, float(shadow_floor), float(shadow_cap)
        self.shadow_weight = float(shadow_weight)

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor:
        with torch.no_grad():
            targets = self.targets(exposures.float())
        return self.against(fused, *targets)

    def against(self, fused: Tensor, tones: Tensor, floor: Tensor) -> Tensor:
        """The loss of ``fused`` given its exposures' :meth:`targets` (made once when one photo is optimised many times)."""
        fused_luma = gray(*fused.float().unbind(-3))[:, None]
        block = min(self.block, *fused.shape[-2:])
        tone = (F.avg_pool2d(fused_luma, block, ceil_mode=True) - tones).abs().mean()
        return tone + self.shadow_weight * (floor - fused_luma).relu().mean()

    def targets(self, exposures: Tensor) -> tuple[Tensor, Tensor]:
        """Mertens' block-averaged luma (N, 1, h, w) and the shadow floor (N, 1, H, W) of (N, K, 3, H, W) exposures."""
        mertens = pyramid_blend(exposures, mertens_weights(exposures)).clamp_(0, 1)
        block = min(self.block, *exposures.shape[-2:])
        tones = F.avg_pool2d(gray(*mertens.unbind(-3))[:, None], block, ceil_mode=True)
        brightest = brightest_luma(exposures)[:, None]
        floor = luma_floor(brightest, self.shadow_floor, self.shadow_cap)
        return tones, floor


class EdgeLoss(nn.Module):
    """1 - a smooth Q^AB/F: Petrović and Xydeas' edge preservation, differentiable, as a loss.

    The metric's sigmoids of relative edge strength and orientation, weighted by each exposure's edge
    strength, on continuous luma rather than 8-bit levels; the orientation difference is the angle between
    the two gradients' lines (in [0, pi/2]), which the metric approximates without wrapping.
    """

    needs_reference = False

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor:
        with torch.no_grad():
            targets = self.targets(exposures)
        return self.against(fused, *targets)

    @staticmethod
    def targets(exposures: Tensor) -> tuple[Tensor, Tensor]:
        """The exposures' Sobel gradients (N, K, 2, H, W) and edge strengths (N, K, H, W)."""
        x = _sobel(gray(*exposures.float().unbind(-3)))
        return x, x.square().sum(dim=2).sqrt()  # not x.norm(dim=2): a norm over a middle dimension is ~30x slower on CPU

    def against(self, fused: Tensor, x: Tensor, g_x: Tensor) -> Tensor:
        """The loss of ``fused`` given its exposures' :meth:`targets` (made once when one photo is optimised many times)."""
        (gamma_g, k_g, sigma_g), (gamma_a, k_a, sigma_a) = QABF_CONSTANTS
        f = _sobel(gray(*fused.float().unbind(-3))[:, None])  # (N, 1, 2, H, W)
        g_f = (f.square().sum(dim=2) + 1e-12).sqrt()
        strength = torch.minimum(g_x, g_f) / torch.maximum(g_x, g_f).clamp_min(1e-6)
        cosine = ((f * x).sum(dim=2).abs() / (g_f * g_x).clamp_min(1e-6)).clamp(0, 1 - 1e-6)
        orientation = 1 - torch.acos(cosine) / (math.pi / 2)
        kept = gamma_g * torch.sigmoid(-k_g * (strength - sigma_g)) * gamma_a * torch.sigmoid(-k_a * (orientation - sigma_a))
        return 1 - (kept * g_x).sum() / g_x.sum().clamp_min(1e-6)


def _sobel(images: Tensor) -> Tensor:
    """Sobel derivatives (..., 2, H, W) of (N, C, H, W) images (replicated borders)."""
    return kornia.filters.spatial_gradient(images, mode="sobel", normalized=True)
