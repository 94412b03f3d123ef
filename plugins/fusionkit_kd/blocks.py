"""Small building blocks shared by the reference student and teacher."""

from torch import Tensor, nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """conv3x3-ReLU-conv3x3 plus identity skip, no normalisation (as KDDN's reimplementations)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
