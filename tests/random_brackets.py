"""Random exposures with random normalised weight maps, for the blend tests."""

from __future__ import annotations

import torch


def random_bracket(n: int = 1, k: int = 3, h: int = 21, w: int = 26, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exposures (N, K, 3, H, W) in [0, 1], and two weight maps (N, K, 1, H, W) that sum to one over K."""
    generator = torch.Generator().manual_seed(seed)
    exposures = torch.rand(n, k, 3, h, w, generator=generator)
    weights = torch.softmax(3 * torch.randn(n, k, 1, h, w, generator=generator), dim=1)
    coarse = torch.softmax(3 * torch.randn(n, k, 1, h, w, generator=generator), dim=1)
    return exposures, weights, coarse
