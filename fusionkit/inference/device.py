"""Which device inference and training run on: CUDA when there is one, else the CPU."""

from __future__ import annotations

import torch

from ..errors import FusionkitError, param


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unknown or unavailable device is a one-line error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise FusionkitError(f"{param('device')} {requested}: not a device; use auto, cpu, cuda or cuda:N")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FusionkitError(f"{param('device')} {requested}: MPS is not available on this machine")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FusionkitError(f"{param('device')} {requested}: CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise FusionkitError(f"{param('device')} {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
