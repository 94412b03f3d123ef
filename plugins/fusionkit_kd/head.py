"""Fusion heads: two x2 upsamplings, optional low-level concat and channel attention, then either the
image itself (the paper) or one weight logit map per exposure (blending the photographs)."""

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
            conv3x3(fused, width), nn.ReLU(inplace=True), conv3x3(width, out_channels), *self.output_layer()
        )
        init_weights(self.upsample, self.reconstruct)  # the attention block keeps its own init

    def output_layer(self) -> list[nn.Module]:
        """The paper's image output: Tanh into [-1, 1]."""
        return [nn.Tanh()]

    def forward(self, bottleneck: Tensor, skip: Tensor | None = None) -> Tensor:
        y = self.upsample(bottleneck)
        if self.use_skip:
            if skip is None:
                raise ValueError("this head was built with skip features but got none")
            y = torch.cat([y, skip], dim=1)
        return self.reconstruct(self.attention(y))


class WeightMapHead(UpsampleHead):
    """The same layers ending in one logit map per exposure (no Tanh), for a network that blends
    its inputs; the last convolution starts at zero, so training starts from the blend's prior."""

    produces = "weights"

    def __init__(
        self,
        in_channels: int,
        skip_channels: int = 0,
        out_channels: int = 2,
        width: int | None = None,
        channel_attention: str = "none",
        upsamplings: int = 2,
    ) -> None:
        super().__init__(in_channels, skip_channels, out_channels, width, channel_attention, upsamplings)
        last = self.reconstruct[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def output_layer(self) -> list[nn.Module]:
        return []
