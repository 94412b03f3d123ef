"""Whole-image pooling that stays exact when a network runs tile by tile.

Attention blocks that pool over the whole image (squeeze-and-excitation, strip pooling) would see
only one tile's statistics when a large photo is fused in tiles. A block that pools through
``WholeImagePool`` and resizes pooled grids with ``upsample_like`` gets the whole image's
statistics in every tile: the tiled engine (``fusionkit.tiling``) gathers them tile by tile first
and hands each tile its part. Outside a tiled run both are plain adaptive pooling and bilinear
resizing, so training and whole-image inference are unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Size = tuple[int | None, int | None]


class PoolingContext(Protocol):
    """What a tiled run provides to the layers below (implemented by ``fusionkit.tiling``)."""

    def pool(self, layer: "WholeImagePool", x: Tensor) -> Tensor: ...

    def upsample(self, grid: Tensor, like: Tensor) -> Tensor: ...


_active: ContextVar[PoolingContext | None] = ContextVar("fusionkit_pooling_context", default=None)


@contextmanager
def pooling_context(context: PoolingContext | None) -> Iterator[None]:
    """Route every ``WholeImagePool`` and ``upsample_like`` call to ``context`` (a tiled run) while inside.

    ``None`` restores plain pooling over whatever the layer receives (a tile's own statistics).
    """
    token = _active.set(context)
    try:
        yield
    finally:
        _active.reset(token)


class WholeImagePool(nn.Module):
    """Adaptive average pooling to ``output_size`` over the whole image, even in a tiled run.

    ``None`` keeps an axis: ``(1, None)`` averages every column (a 1 x W strip), ``(None, 1)`` every
    row, ``1`` gives one value per channel (squeeze-and-excitation), ``(20, 20)`` a pyramid grid.
    """

    def __init__(self, output_size: int | None | Sequence[int | None]) -> None:
        super().__init__()
        size = tuple(output_size) if isinstance(output_size, Sequence) else (output_size, output_size)
        if len(size) != 2:
            raise ValueError(f"output_size must be one or two sizes, got {output_size!r}")
        self.output_size: Size = size  # type: ignore[assignment]

    def forward(self, x: Tensor) -> Tensor:
        context = _active.get()
        if context is None:
            return F.adaptive_avg_pool2d(x, self.output_size)
        return context.pool(self, x)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def upsample_like(grid: Tensor, like: Tensor) -> Tensor:
    """Bilinearly resize a pooled grid to ``like``'s size; in a tiled run, to the whole image, cropped to the tile."""
    context = _active.get()
    if context is None:
        return F.interpolate(grid, size=like.shape[-2:], mode="bilinear", align_corners=False)
    return context.upsample(grid, like)


def pooling_matrix(length: int, size: int, *, dtype=torch.float64, device=None) -> Tensor:
    """(size, length) matrix of adaptive average pooling along one axis.

    Bins follow PyTorch's adaptive pooling: bin i covers [floor(i*L/size), ceil((i+1)*L/size)).
    """
    index = torch.arange(size)
    starts = (index * length) // size
    ends = -((-(index + 1) * length) // size)
    columns = torch.arange(length)
    member = (columns[None, :] >= starts[:, None]) & (columns[None, :] < ends[:, None])
    return (member / (ends - starts)[:, None]).to(dtype=dtype, device=device)


def bilinear_matrix(out_length: int, in_length: int, *, dtype=torch.float64, device=None) -> Tensor:
    """(out_length, in_length) matrix of bilinear resizing along one axis, as ``F.interpolate(align_corners=False)``."""
    position = ((torch.arange(out_length, dtype=torch.float64) + 0.5) * (in_length / out_length) - 0.5).clamp(min=0)
    lower = position.floor().long().clamp(max=in_length - 1)
    upper = (lower + 1).clamp(max=in_length - 1)
    frac = position - lower
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    rows = torch.arange(out_length)
    matrix.index_put_((rows, lower), 1 - frac, accumulate=True)
    matrix.index_put_((rows, upper), frac, accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def pooling_groups(model: nn.Module) -> dict[WholeImagePool, str]:
    """Each ``WholeImagePool`` of ``model`` -> the block that owns it (its parent, skipping ModuleList/Dict).

    The pools of one block are filled in the same pass, so they must depend only on that block's input.
    """
    modules = dict(model.named_modules())
    groups = {}
    for name, module in modules.items():
        if isinstance(module, WholeImagePool):
            owner = name.rpartition(".")[0]
            while owner and isinstance(modules[owner], (nn.ModuleList, nn.ModuleDict)):
                owner = owner.rpartition(".")[0]
            groups[module] = owner
    return groups
