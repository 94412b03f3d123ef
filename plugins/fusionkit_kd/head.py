"""The fusion head: two x2 upsamplings, optional low-level concat and channel attention, reconstruction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import fusionkit

from .blocks import conv3x3, init_weights


class Upsample2x(nn.Module):
    """conv3x3 + ReLU, then bilinear x2 (KDDN's upsampling)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(F.relu(self.conv(x)), scale_factor=2, mode="bilinear", align_corners=False)


class UpsampleHead(nn.Module):
    """Upsample the bottleneck x4, concat the skip features (if any), channel attention, conv-ReLU-conv + Tanh."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: int = 0,
        out_channels: int = 3,
        width: int | None = None,
        channel_attention: str = "none",
        upsamplings: int = 2,
    ) -> None:
        super().__init__()
        width = width or in_channels
        ups, channels = [], in_channels
        for _ in range(upsamplings):
            ups.append(Upsample2x(channels, width))
            channels = width
        self.upsample = nn.Sequential(*ups)
        self.use_skip = skip_channels > 0
        fused = width + skip_channels
        self.attention = fusionkit.create("attention", channel_attention, fused)
        self.reconstruct = nn.Sequential(
            conv3x3(fused, width), nn.ReLU(inplace=True), conv3x3(width, out_channels), nn.Tanh()
        )
        init_weights(self.upsample, self.reconstruct)  # the attention block keeps its own init

    def forward(self, bottleneck: Tensor, skip: Tensor | None = None) -> Tensor:
        y = self.upsample(bottleneck)
        if self.use_skip:
            if skip is None:
                raise ValueError("this head was built with skip features but got none")
            y = torch.cat([y, skip], dim=1)
        return self.reconstruct(self.attention(y))
