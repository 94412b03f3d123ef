"""The paper's attention blocks: squeeze-and-excitation (channel) and strip pooling (spatial)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusionkit.api import WholeImagePool, upsample_like


class NoAttention(nn.Identity):
    """No attention: passes features through unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): global pool, C -> C/r -> C MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = WholeImagePool(1)
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        weights = self.gate(self.pool(x).flatten(1))
        return x * weights[:, :, None, None]


def _conv_bn(in_channels: int, out_channels: int, kernel, padding, relu: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, kernel, padding=padding, bias=False), nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class StripPooling(nn.Module):
    """Mixed pooling module of Strip Pooling (Hou et al., CVPR 2020).

    Branch 1 (short-range): 3x3 conv + two pyramid pools (adaptive average pool to
    ``pool_sizes``, 3x3 conv, bilinear upsample). Branch 2 (long-range): a 1xW strip pool + 1x3
    conv and an Hx1 strip pool + 3x1 conv, each expanded back. Each branch: ReLU + 3x3 conv;
    concatenated, a 1x1 conv back to C, and ReLU(x + out). Pool sizes are absolute, as in SPNet.
    Every pool is a ``WholeImagePool``, so a tiled fuse sees the whole image's strips and grids.
    """

    def __init__(self, channels: int, pool_sizes: Sequence[int] = (20, 12), reduction: int = 4) -> None:
        super().__init__()
        inter = max(1, channels // reduction)
        self.pool_sizes = tuple(pool_sizes)
        self.grid_pools = nn.ModuleList(WholeImagePool(size) for size in self.pool_sizes)
        self.column_pool = WholeImagePool((1, None))  # 1 x W strip: the mean of every column
        self.row_pool = WholeImagePool((None, 1))  # H x 1 strip: the mean of every row
        self.reduce_short = _conv_bn(channels, inter, 1, 0, relu=True)
        self.reduce_long = _conv_bn(channels, inter, 1, 0, relu=True)
        self.local = _conv_bn(inter, inter, 3, 1)
        self.pyramid = nn.ModuleList(_conv_bn(inter, inter, 3, 1) for _ in self.pool_sizes)
        self.strip_w = _conv_bn(inter, inter, (1, 3), (0, 1))
        self.strip_h = _conv_bn(inter, inter, (3, 1), (1, 0))
        self.fuse_short = _conv_bn(inter, inter, 3, 1)
        self.fuse_long = _conv_bn(inter, inter, 3, 1)
        self.project = _conv_bn(2 * inter, channels, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        short = self.reduce_short(x)
        short_sum = self.local(short)
        for pool, conv in zip(self.grid_pools, self.pyramid):
            short_sum = short_sum + upsample_like(conv(pool(short)), short)
        long = self.reduce_long(x)
        along_w = self.strip_w(self.column_pool(long))
        along_h = self.strip_h(self.row_pool(long))
        long_sum = along_w.expand(-1, -1, h, w) + along_h.expand(-1, -1, h, w)
        short_out = self.fuse_short(F.relu(short_sum))
        long_out = self.fuse_long(F.relu(long_sum))
        return F.relu(x + self.project(torch.cat([short_out, long_out], dim=1)))
