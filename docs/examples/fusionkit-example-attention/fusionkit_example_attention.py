"""Example fusionkit plugin: registers one attention block, ``gated_spatial``."""

from __future__ import annotations

from torch import Tensor, nn

import fusionkit


class GatedSpatial(nn.Module):
    """Learned spatial gate: a conv to one channel + sigmoid scales every position of the input."""

    def __init__(self, channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.gate = nn.Conv2d(channels, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        # (N, C, H, W) * (N, 1, H, W) -> (N, C, H, W): the attention contract.
        return x * self.gate(x).sigmoid()


@fusionkit.hookimpl
def register_components(register):
    register("attention", "gated_spatial", GatedSpatial)
