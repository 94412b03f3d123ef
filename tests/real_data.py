"""The real photographs beside the repository (``../shared/data``, or ``$FUSIONKIT_SHARED_DATA``), for the tests
that need them: a test skips, saying where it looked, only where they are absent."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fusionkit.data.io import read_image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUSIONKIT_SHARED_DATA") or REPO.parent / "shared" / "data")
#: Long side of the brackets :func:`bracket` gives.
LONG_SIDE = 400


def shared(path: str) -> Path:
    """``path`` under the real data, or skip the test."""
    found = SHARED / path
    if not found.exists():
        pytest.skip(f"no real data in {SHARED} (set FUSIONKIT_SHARED_DATA to the folder holding brackets/ and photos/)")
    return found


@cache
def bracket(scene: str) -> torch.Tensor:
    """The darkest, middle and brightest exposure of ``scene`` of brackets/test, long side LONG_SIDE: (1, 3, 3, H, W)."""
    files = sorted(shared(f"brackets/test/{scene}").glob("*.jpg"))
    images = torch.stack([read_image(files[i]) for i in (0, len(files) // 2, -1)])
    size = [round(n * LONG_SIDE / max(images.shape[-2:])) for n in images.shape[-2:]]
    return F.interpolate(images, size=size, mode="area")[None]
