"""The student's ResBlock backbone: base layer (kept as low-level features), 1/4 downsampling, ResBlocks."""

from __future__ import annotations

from torch import Tensor, nn

from fusionkit.api import BackboneOutput

from .blocks import ResBlock, conv3x3, init_weights


class KDResNetBackbone(nn.Module):
    """Two base convs (low-level skip features), two stride-2 convs, ``num_blocks`` ResBlocks.

    Every ResBlock output is offered for distillation (block i is ``features[i - 1]``).
    """

    reduction = 4

    def __init__(self, in_channels: int = 6, width: int = 64, num_blocks: int = 6) -> None:
        super().__init__()
        self.base = nn.Sequential(
            conv3x3(in_channels, width), nn.ReLU(inplace=True), conv3x3(width, width), nn.ReLU(inplace=True)
        )
        self.down = nn.Sequential(
            conv3x3(width, width, stride=2), nn.ReLU(inplace=True), conv3x3(width, width, stride=2), nn.ReLU(inplace=True)
        )
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(num_blocks))
        self.out_channels = width
        self.skip_channels = width
        self.feature_channels = [width] * num_blocks
        init_weights(self)

    def forward(self, x: Tensor) -> BackboneOutput:
        low = self.base(x)
        y = self.down(low)
        features = []
        for block in self.blocks:
            y = block(y)
            features.append(y)
        return BackboneOutput(y, low, features)
