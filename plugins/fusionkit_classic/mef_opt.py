"""MEF-Opt: per-image gradient ascent on MEF-SSIM (after Ma et al., IEEE TCI 2018), in the space of
blend weights rather than pixels, so the result stays a blend of the photographs themselves."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import fusionkit
from fusionkit.api import MEF_SSIM_WINDOW, ComponentOptionError, WeightBlend, fit_within, pyramid_blend

from .base import FusionMethod


class MEFOpt(FusionMethod):
    """Mertens' weights corrected per image by coarse logits that maximise MEF-SSIM while keeping tones.

    Photos longer than ``work_size`` are scaled to it (logits optimised on a smaller copy of a photo
    transfer poorly: at 640 px they scored below Mertens at 1200 px); one logit per exposure and ``cell`` x ``cell``
    pixels, upsampled bilinearly and added to the log of Mertens' weights, is optimised with Adam for
    ``iterations`` steps of ``lr`` on ``1 - MEF-SSIM + tone_weight * tones + edge_weight * (1 - smooth Q^AB/F)``
    (the ``mef_ssim``, ``tones`` with ``shadow_weight`` and ``qabf`` losses); the logits then blend the
    full-resolution photos in a Laplacian pyramid at every level, or with ``fine_levels=n`` at the n finest
    levels only, Mertens' weights keeping the coarser levels and so the tones. Optimising weights, not pixels, measured
    better edge preservation (Q^AB/F) and fewer crushed shadows than pixel ascent (docs/pretrained.md,
    "What was tried").
    """

    #: Seconds a pair on a CPU: ``fusionkit bench`` runs it only when named with --methods.
    optimises_per_image = True

    def __init__(
        self, iterations: int = 60, lr: float = 0.2, cell: int = 8, work_size: int = 2048, tone_weight: float = 0.3,
        edge_weight: float = 0.0, shadow_weight: float = 10.0, fine_levels: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("iterations", iterations), ("cell", cell), ("work_size", work_size)):
            if not isinstance(value, int) or value < 1:
                raise ComponentOptionError(f"method 'mef_opt': {name} must be a whole number >= 1; got {value!r}")
        if fine_levels is not None and (isinstance(fine_levels, bool) or not isinstance(fine_levels, int) or fine_levels < 1):
            raise ComponentOptionError(f"method 'mef_opt': fine_levels must be a whole number >= 1 or null; got {fine_levels!r}")
        if not lr > 0 or min(tone_weight, edge_weight, shadow_weight) < 0:
            raise ComponentOptionError("method 'mef_opt': lr must be > 0; tone_weight, edge_weight and shadow_weight >= 0")
        self.iterations, self.lr, self.cell, self.work_size, self.tone_weight = iterations, float(lr), cell, work_size, float(tone_weight)
        self.edge_weight = float(edge_weight)
        self.mef_ssim = fusionkit.create("loss", "mef_ssim")
        self.tones = fusionkit.create("loss", "tones", shadow_weight=shadow_weight)
        self.edges = fusionkit.create("loss", "qabf")
        self.blend = WeightBlend("pyramid", "mertens", fine_levels=fine_levels)

    def logits(self, exposures: torch.Tensor, start: torch.Tensor | None = None, blend: WeightBlend | None = None) -> torch.Tensor:
        """The optimised coarse logits (N, K, h, w) of (N, K, 3, H, W) exposures.

        ``start``: logits (N, K, H, W) the coarse ones are added to (a student's, to refine them; default
        none, Mertens' weights alone); ``blend``: the :class:`WeightBlend` whose prior and levels are
        optimised for (default this method's: Mertens' untilted weights).
        """
        blend = blend or self.blend
        # Float32 whatever the caller's autocast: MEF-SSIM's small differences do not survive bf16.
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(exposures.device.type, enabled=False):
            small = fit_within(exposures.float().clone(), self.work_size)
            size = small.shape[-2:]
            z = torch.zeros(*small.shape[:2], -(-size[0] // self.cell) + 1, -(-size[1] // self.cell) + 1, device=small.device)
            if min(size) < MEF_SSIM_WINDOW:  # too thin for one MEF-SSIM window: nothing to optimise
                return z
            prior_weights = blend.prior_weights(small)
            fine_levels = blend.fine_levels
            base, coarse = prior_weights.log(), (None if fine_levels is None else prior_weights)  # logits z is added to
            if start is not None:
                base = base + _resized(start.float(), size).clone()[:, :, None]  # clone: not an inference tensor
            z.requires_grad_(True)
            optimiser = torch.optim.Adam([z], lr=self.lr)
            for _ in range(self.iterations):
                weights = torch.softmax(_upsampled(z, size)[:, :, None] + base, dim=1)
                fused = pyramid_blend(small, weights, coarse_weights=coarse, fine_levels=fine_levels or 0).clamp(0, 1)
                loss = self.mef_ssim(fused, small, None) + self.tone_weight * self.tones(fused, small, None)
                if self.edge_weight:
                    loss = loss + self.edge_weight * self.edges(fused, small, None)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        return z.detach()

    def refine(self, exposures: torch.Tensor, logits: torch.Tensor, blend: WeightBlend) -> torch.Tensor:
        """A student's full-resolution logits (N, K, H, W), corrected by this method's ascent from them for ``blend``."""
        return logits + _upsampled(self.logits(exposures, logits, blend), exposures.shape[-2:])

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        z = self.logits(exposures)
        logits = _upsampled(z, exposures.shape[-2:])
        return self.blend(exposures.float(), lambda top, bottom: logits[..., top:bottom, :]).to(exposures.dtype)


def _upsampled(z: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(z, size=tuple(size), mode="bilinear", align_corners=False)


def _resized(logits: torch.Tensor, size) -> torch.Tensor:
    """Logits (N, K, H, W) at ``size`` (antialiased when smaller), the optimisation's copy of the photos."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
