"""Which device inference and training run on: CUDA when there is one, else the CPU."""

from __future__ import annotations

import torch

from ..errors import FusionkitError


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA request is a clear error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FusionkitError(f"--device {requested}: CUDA is not available on this machine")
    return device
