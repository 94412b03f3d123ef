"""MEF-Opt: per-image gradient ascent on MEF-SSIM (after Ma et al., IEEE TCI 2018), in the space of
blend weights rather than pixels, so the result stays a blend of the photographs themselves."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import fusionkit
from fusionkit.api import (
    MEF_SSIM_WINDOW, ComponentOptionError, LevelCorrection, WeightBlend, corrected_blend, fit_within, level_sizes, pyramid_blend,
    pyramid_levels,
)

from .base import FusionMethod


class MEFOpt(FusionMethod):
    """Mertens' weights corrected per image by coarse logits that maximise MEF-SSIM while keeping tones.

    Photos longer than ``work_size`` are scaled to it (logits optimised on a smaller copy of a photo
    transfer poorly: at 640 px they scored below Mertens at 1200 px); one logit per exposure and ``cell`` x ``cell``
    pixels, upsampled bilinearly and added to the log of Mertens' weights, is optimised with Adam for
    ``iterations`` steps of ``lr`` on ``1 - MEF-SSIM + tone_weight * tones + edge_weight * (1 - smooth Q^AB/F)``
    (the ``mef_ssim``, ``tones`` with ``shadow_weight`` and ``qabf`` losses); the logits then blend the
    full-resolution photos in a Laplacian pyramid at every level, or with ``fine_levels=n`` at the n finest
    levels only, Mertens' weights keeping the coarser levels and so the tones. With ``per_level``, each learned pyramid
    level gets logits of its own (cells of ``cell`` photo pixels, at least one level pixel), added to its share of the
    weights' Gaussian pyramid: more freedom where MEF-SSIM's scales differ. Optimising weights, not pixels, measured
    better edge preservation (Q^AB/F) and fewer crushed shadows than pixel ascent (docs/pretrained.md,
    "What was tried").
    """

    #: Seconds a pair on a CPU: ``fusionkit bench`` runs it only when named with --methods.
    optimises_per_image = True

    def __init__(
        self, iterations: int = 60, lr: float = 0.2, cell: int = 8, work_size: int = 2048, tone_weight: float = 0.3,
        edge_weight: float = 0.0, shadow_weight: float = 10.0, fine_levels: int | None = None, per_level: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("iterations", iterations), ("cell", cell), ("work_size", work_size)):
            if not isinstance(value, int) or value < 1:
                raise ComponentOptionError(f"method 'mef_opt': {name} must be a whole number >= 1; got {value!r}")
        if fine_levels is not None and (isinstance(fine_levels, bool) or not isinstance(fine_levels, int) or fine_levels < 1):
            raise ComponentOptionError(f"method 'mef_opt': fine_levels must be a whole number >= 1 or null; got {fine_levels!r}")
        if not isinstance(per_level, bool):
            raise ComponentOptionError(f"method 'mef_opt': per_level must be true or false; got {per_level!r}")
        if not lr > 0 or min(tone_weight, edge_weight, shadow_weight) < 0:
            raise ComponentOptionError("method 'mef_opt': lr must be > 0; tone_weight, edge_weight and shadow_weight >= 0")
        self.iterations, self.lr, self.cell, self.work_size, self.tone_weight = iterations, float(lr), cell, work_size, float(tone_weight)
        self.edge_weight, self.per_level = float(edge_weight), per_level
        self.mef_ssim = fusionkit.create("loss", "mef_ssim")
        self.tones = fusionkit.create("loss", "tones", shadow_weight=shadow_weight)
        self.edges = fusionkit.create("loss", "qabf")
        self.blend = WeightBlend("pyramid", "mertens", fine_levels=fine_levels)

    def logits(self, exposures: torch.Tensor, start: torch.Tensor | None = None, blend: WeightBlend | None = None) -> torch.Tensor:
        """The optimised coarse logits (N, K, h, w) of (N, K, 3, H, W) exposures, one grid shared by every level."""
        return self.grids(exposures, start, blend, per_level=False)[0]

    def grids(
        self, exposures: torch.Tensor, start: torch.Tensor | None = None, blend: WeightBlend | None = None, per_level: bool | None = None
    ) -> list[torch.Tensor]:
        """The optimised coarse logits of (N, K, 3, H, W) exposures: one (N, K, h, w) grid, or ``per_level`` (default
        this method's option) one grid a learned pyramid level of the optimisation's copy of the photos, finest first.

        ``start``: logits (N, K, H, W) the coarse ones are added to (a student's, to refine them; default
        none, Mertens' weights alone); ``blend``: the :class:`WeightBlend` whose prior and levels are
        optimised for (default this method's: Mertens' untilted weights). Photos thinner than one MEF-SSIM
        window keep zero logits: nothing to optimise.
        """
        blend = blend or self.blend
        per_level = self.per_level if per_level is None else per_level
        # Float32 whatever the caller's autocast: MEF-SSIM's small differences do not survive bf16.
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(exposures.device.type, enabled=False):
            small = fit_within(exposures.float().clone(), self.work_size)
            size = small.shape[-2:]
            fine_levels = blend.fine_levels
            learned = pyramid_levels(*size) + 1 if fine_levels is None else min(fine_levels, pyramid_levels(*size) + 1)
            sizes = level_sizes(size, learned if per_level else 1)  # one grid a learned level, or one shared grid
            grids = [_grid(small, level_size, max(self.cell >> level, 1)) for level, level_size in enumerate(sizes)]
            if min(size) < MEF_SSIM_WINDOW:
                return [grid.detach() for grid in grids]
            prior_weights = blend.prior_weights(small)
            base, coarse = prior_weights.log(), (None if fine_levels is None else prior_weights)  # logits z is added to
            if start is not None:
                base = base + _resized(start.float(), size).clone()[:, :, None]  # clone: not an inference tensor
            with torch.no_grad():  # what does not change from step to step, made once
                blend_of = corrected_blend(small, torch.softmax(base, dim=1), coarse, None, fine_levels or 0) if per_level else None
                tone_targets, edge_targets = self.tones.targets(small), self.edges.targets(small)
            optimiser = torch.optim.Adam(grids, lr=self.lr)
            for _ in range(self.iterations):
                if per_level:
                    fused = blend_of(_correction(grids, sizes))
                else:
                    fused = pyramid_blend(small, torch.softmax(_upsampled(grids[0], size)[:, :, None] + base, dim=1),
                                          coarse_weights=coarse, fine_levels=fine_levels or 0)
                fused = fused.clamp(0, 1)
                loss = self.mef_ssim(fused, small, None) + self.tone_weight * self.tones.against(fused, *tone_targets)
                if self.edge_weight:
                    loss = loss + self.edge_weight * self.edges.against(fused, *edge_targets)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        return [grid.detach() for grid in grids]

    def correction(self, grids: list[torch.Tensor], height: int, width: int) -> LevelCorrection:
        """The level correction that ``per_level`` grids optimised on a copy of the photos make of (H, W) photos.

        The copy's level l carries the detail of the photos' level l + d, d the number of halvings between
        them; the photos' d finest levels, finer than the copy shows, keep their weights."""
        shift = max(round(math.log2(max(height, width) / min(self.work_size, max(height, width)))), 0)
        sizes = level_sizes((height, width), shift + len(grids))
        upsampled: dict[int, torch.Tensor] = {}

        def level_correction(level: int, top: int, bottom: int) -> torch.Tensor | None:
            if not shift <= level < shift + len(grids):
                return None
            if level not in upsampled:
                upsampled[level] = _upsampled(grids[level - shift], sizes[level])[:, :, None]
            return upsampled[level][..., top:bottom, :]

        return level_correction

    def refine(self, exposures: torch.Tensor, logits: torch.Tensor, blend: WeightBlend) -> LevelCorrection:
        """The correction of each pyramid level's weights that this method's ascent finds from a student's
        full-resolution logits (N, K, H, W) for ``blend``: always level by level, which measured better than one
        correction shared by every level at the same cost (docs/pretrained.md, item 13)."""
        return self.correction(self.grids(exposures, logits, blend, per_level=True), *exposures.shape[-2:])

    def fuse(self, exposures: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        grids = self.grids(exposures)
        (count, k), (height, width) = exposures.shape[:2], exposures.shape[-2:]
        if self.per_level:
            zero = lambda top, bottom: exposures.new_zeros(count, k, bottom - top, width, dtype=torch.float32)  # noqa: E731
            return self.blend(exposures.float(), zero, self.correction(grids, height, width)).to(exposures.dtype)
        logits = _upsampled(grids[0], (height, width))
        return self.blend(exposures.float(), lambda top, bottom: logits[..., top:bottom, :]).to(exposures.dtype)


def _upsampled(z: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(z, size=tuple(size), mode="bilinear", align_corners=False)


def _resized(logits: torch.Tensor, size) -> torch.Tensor:
    """Logits (N, K, H, W) at ``size`` (antialiased when smaller), the optimisation's copy of the photos."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


def _grid(photos: torch.Tensor, size, cell: int) -> torch.Tensor:
    """Zero logits (N, K, h, w) to optimise, one per exposure and ``cell`` x ``cell`` pixels of a level of ``size``."""
    return torch.zeros(*photos.shape[:2], -(-size[0] // cell) + 1, -(-size[1] // cell) + 1, device=photos.device, requires_grad=True)


def _correction(grids: list[torch.Tensor], sizes: list[tuple[int, int]]) -> LevelCorrection:
    """The level correction of per-level ``grids`` on the pyramid whose level sizes are ``sizes`` (with gradients)."""
    return lambda level, top, bottom: _upsampled(grids[level], sizes[level])[:, :, None, top:bottom] if level < len(grids) else None
