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


def init_weights(*modules: nn.Module) -> None:
    """He-normal convolutions with zero bias, and each ResBlock's last conv at zero.

    A zero last conv makes every ResBlock start as the identity (Goyal et al., 2017), which
    keeps the narrow nets used on CPU out of the long initial plateau of PyTorch's default init.
    """
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        for layer in module.modules():
            if isinstance(layer, ResBlock):
                nn.init.zeros_(layer.body[-1].weight)
