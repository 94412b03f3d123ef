"""Composition of a fusion network from registered parts, and helpers every model user needs."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..interfaces import BackboneOutput


class FusionNet(nn.Module):
    """backbone -> bottleneck attention blocks -> fusion head.

    Takes ``num_inputs`` exposures of ``in_channels`` each, concatenated along channels
    (N, num_inputs * in_channels, H, W), and returns an image in [-1, 1] of ``in_channels``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        bottleneck_attention: Sequence[nn.Module],
        head: nn.Module,
        *,
        in_channels: int,
        num_inputs: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bottleneck_attention = nn.Sequential(*bottleneck_attention)
        self.head = head
        self.in_channels = in_channels
        self.num_inputs = num_inputs
        self.multiple_of = int(getattr(backbone, "reduction", 1))

    def forward(self, x: Tensor, return_features: bool = False):
        expected = self.in_channels * self.num_inputs
        if x.ndim != 4 or x.shape[1] != expected:
            raise ValueError(
                f"expected input (N, {expected}, H, W) = {self.num_inputs} exposures of "
                f"{self.in_channels} channels, got {tuple(x.shape)}"
            )
        out: BackboneOutput = self.backbone(x)
        image = self.head(self.bottleneck_attention(out.bottleneck), out.skip)
        return (image, out.features) if return_features else image


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple (so strided nets accept any size); returns original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
