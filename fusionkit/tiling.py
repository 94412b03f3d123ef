"""Run a network on overlapping tiles and feather them together, so memory is bounded on large photos."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .errors import FusionkitError


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis covering [0, size), consecutive tiles sharing ``overlap`` pixels."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, fade_in: bool, fade_out: bool, like: Tensor) -> Tensor:
    """1 inside, linear ramps over ``overlap`` pixels at the sides that meet another tile."""
    weight = torch.ones(length, dtype=like.dtype, device=like.device)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=like.dtype, device=like.device) / (overlap + 1)
        if fade_in:
            weight[:overlap] = ramp
        if fade_out:
            weight[-overlap:] = ramp.flip(0)
    return weight


def tiled_apply(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, multiple: int = 1) -> Tensor:
    """``fn`` over (tile x tile) windows of x (N, C, H, W); H and W must already be multiples of ``multiple``."""
    if tile % multiple or overlap < 0 or overlap >= tile:
        raise FusionkitError(f"--tile must be a multiple of {multiple} and larger than --overlap (got tile {tile}, overlap {overlap})")
    h, w = x.shape[-2:]
    tile_h, tile_w = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, tile_h, overlap), tile_starts(w, tile_w, overlap)
    out = weights = None
    for i, top in enumerate(ys):
        for j, left in enumerate(xs):
            piece = fn(x[..., top : top + tile_h, left : left + tile_w]).float()
            if out is None:
                out = piece.new_zeros(*piece.shape[:2], h, w)
                weights = piece.new_zeros(1, 1, h, w)
            wy = _ramp(tile_h, overlap, i > 0, i < len(ys) - 1, piece)
            wx = _ramp(tile_w, overlap, j > 0, j < len(xs) - 1, piece)
            window = wy[:, None] * wx[None, :]
            out[..., top : top + tile_h, left : left + tile_w] += piece * window
            weights[..., top : top + tile_h, left : left + tile_w] += window
    return out / weights
