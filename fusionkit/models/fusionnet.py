"""Composition of a fusion network from registered parts, and helpers every model user needs."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..contracts import BackboneOutput
from .blend import WeightBlend


class FusionNet(nn.Module):
    """backbone -> bottleneck attention blocks -> fusion head, then (optionally) a weight blend.

    Exposures of ``in_channels`` each arrive concatenated along channels, (N, K * in_channels, H, W).
    ``num_inputs=K`` fixes K (the exposures are concatenated into one backbone input, as in the
    paper); ``num_inputs=None`` accepts any K: backbone, attention and head run on each exposure with
    shared weights, each exposure's bottleneck also sees the mean over all exposures, and the head
    gives one logit map per exposure; distillation features are averaged over the exposures.

    Without ``blend`` the head's output is the image in [-1, 1]. With a :class:`WeightBlend` it is
    per-exposure logits (N, K, H, W), and :meth:`fuse` blends the photographs by them.
    """

    def __init__(
        self,
        backbone: nn.Module,
        bottleneck_attention: Sequence[nn.Module],
        head: nn.Module,
        *,
        in_channels: int,
        num_inputs: int | None,
        blend: WeightBlend | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bottleneck_attention = nn.Sequential(*bottleneck_attention)
        self.head = head
        self.blend = blend
        self.in_channels = in_channels
        self.num_inputs = num_inputs
        self.produces = "image" if blend is None else "weights"
        self.multiple_of = int(getattr(backbone, "reduction", 1))

    def forward(self, x: Tensor, return_features: bool = False):
        exposures = self._check(x)
        if self.num_inputs is not None:
            out: BackboneOutput = self.backbone(x)
            output = self.head(self.bottleneck_attention(out.bottleneck), out.skip)
            features = out.features
        else:
            n = x.shape[0]
            out = self.backbone(x.reshape(n * exposures, self.in_channels, *x.shape[-2:]))
            per_exposure = out.bottleneck.unflatten(0, (n, exposures))
            context = (per_exposure + per_exposure.mean(dim=1, keepdim=True)).flatten(0, 1)
            output = self.head(self.bottleneck_attention(context), out.skip).reshape(n, exposures, *x.shape[-2:])
            features = [f.unflatten(0, (n, exposures)).mean(dim=1) for f in out.features]
        return (output, features) if return_features else output

    def fuse(self, exposures: Tensor, logits: Tensor) -> Tensor:
        """Blend exposures (N, K, 3, H, W) in [0, 1] by this network's logits (weight-map heads only)."""
        if self.blend is None:
            raise TypeError("this network regresses the image itself; it has no weight blend")
        return self.blend(exposures, logits)

    def _check(self, x: Tensor) -> int:
        """Validate the input's shape; returns the number of exposures in it."""
        c = self.in_channels
        if self.num_inputs is not None:
            if x.ndim != 4 or x.shape[1] != c * self.num_inputs:
                raise ValueError(
                    f"expected input (N, {c * self.num_inputs}, H, W) = {self.num_inputs} exposures of {c} channels, "
                    f"got {tuple(x.shape)}"
                )
            return self.num_inputs
        if x.ndim != 4 or x.shape[1] < c or x.shape[1] % c:
            raise ValueError(f"expected input (N, K*{c}, H, W) = any number K of exposures of {c} channels, got {tuple(x.shape)}")
        return x.shape[1] // c


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
