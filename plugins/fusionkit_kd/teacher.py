"""The teacher autoencoder ``ae``: learns to reconstruct well-exposed images; its ResBlocks guide the student."""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ResBlock, conv3x3, init_weights


class AutoEncoderTeacher(nn.Module):
    """Two stride-2 Conv+ReLU, ``num_blocks`` ResBlocks, two ConvTranspose+ReLU, conv3x3 + Tanh.

    The final conv + Tanh maps the ReLU features back to an image in [-1, 1] (the paper leaves
    the output layer unstated; KDDN ends the same way).
    """

    multiple_of = 4

    def __init__(self, in_channels: int = 3, width: int = 64, num_blocks: int = 6) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_inputs = 1
        self.down = nn.Sequential(
            conv3x3(in_channels, width, stride=2), nn.ReLU(inplace=True), conv3x3(width, width, stride=2), nn.ReLU(inplace=True)
        )
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(num_blocks))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.reconstruct = nn.Sequential(conv3x3(width, in_channels), nn.Tanh())
        self.feature_channels = [width] * num_blocks
        init_weights(self)

    def forward(self, x: Tensor, return_features: bool = False):
        y = self.down(x)
        features = []
        for block in self.blocks:
            y = block(y)
            features.append(y)
        image = self.reconstruct(self.up(y))
        return (image, features) if return_features else image


def ae(in_channels: int = 3, width: int = 64, num_blocks: int = 6) -> AutoEncoderTeacher:
    """Autoencoder teacher: 1/4 down, six ResBlocks, ConvTranspose up (PAPER: teacher)."""
    return AutoEncoderTeacher(in_channels, width, num_blocks)
