"""The pretrained student this plugin ships: ``fusionkit fuse`` uses it when no run has been trained."""

from __future__ import annotations

from pathlib import Path

#: se_strip, width 32, any number of exposures, distilled from mef_opt on real brackets (recipe: docs/pretrained.md).
SE_STRIP_REAL = Path(__file__).resolve().parent / "pretrained" / "se_strip_real.safetensors"


def se_strip_real() -> Path:
    """se_strip (any number of exposures) distilled from ``mef_opt``'s weights on real brackets; fuses with the shadow fill."""
    return SE_STRIP_REAL
