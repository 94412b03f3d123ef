"""Run a network on overlapping tiles and feather them together, so memory is bounded on large photos.

Layers that pool over the whole image (``fusionkit.wholeimage.WholeImagePool``) get the whole
image's statistics in every tile: before the output pass, one gathering pass per block that pools
runs the tiles up to that block, sums what each tile owns (its part of the image up to the middle
of each overlap) and stops the tile there. A network without such layers takes one pass.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from itertools import count
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import FusionkitError, FusionkitWarning, param
from .locality import tile_dependent_layers
from ..wholeimage import WholeImagePool, bilinear_matrix, pooling_context, pooling_groups, pooling_matrix


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window [start, start + length) and the part it owns [own_start, own_end)."""

    start: int
    length: int
    own_start: int
    own_end: int


@dataclass(frozen=True)
class Tile:
    """One tile: its span along the rows and along the columns."""

    rows: Span
    cols: Span


_PoolCall = tuple[WholeImagePool, int]  # a pool and how many times it ran before in the same forward


def axis_spans(size: int, tile: int, overlap: int, multiple: int = 1) -> list[Span]:
    """Windows covering [0, size), starting on multiples of ``multiple`` and sharing at least ``overlap`` pixels.

    The last window is cut at the image's edge (it keeps more than ``overlap`` pixels), so no pixel is
    run more often than the overlaps need. Each window owns the pixels up to the middle of its
    overlaps (rounded to ``multiple``), so the owned parts cover the axis exactly once.
    """
    if tile >= size:
        return [Span(0, size, 0, size)]
    stride = (tile - overlap) // multiple * multiple
    starts = list(range(0, size - tile, stride))
    starts.append(starts[-1] + stride)
    bounds = [0] + [(nxt + start + tile) // 2 // multiple * multiple for start, nxt in zip(starts, starts[1:])] + [size]
    return [Span(start, min(tile, size - start), bounds[i], bounds[i + 1]) for i, start in enumerate(starts)]


def check_tiling(tile: int, overlap: int, multiple: int = 1) -> None:
    """One-line errors for a tile size and overlap no plan can use (``multiple``: the network's total stride)."""
    if overlap < 0:
        raise FusionkitError(f"{param('overlap')} must not be negative, got {overlap}")
    if tile < 1:
        raise FusionkitError(f"{param('tile')} must be a positive number of pixels, got {tile}")
    if tile % multiple:
        raise FusionkitError(f"{param('tile')} must be a multiple of {multiple} for this model, got {tile}")
    if tile - overlap < multiple:
        raise FusionkitError(f"{param('tile')} must be at least {multiple} larger than {param('overlap')} (got tile {tile}, overlap {overlap})")


@dataclass(frozen=True)
class TilePlan:
    """How an (H, W) image is cut into overlapping tiles."""

    height: int
    width: int
    tile: int
    overlap: int
    multiple: int = 1

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap, self.multiple)
        if self.height % self.multiple or self.width % self.multiple:
            raise FusionkitError(f"the image ({self.width}x{self.height}) must be padded to a multiple of {self.multiple}")

    def tiles(self) -> list[Tile]:
        rows = axis_spans(self.height, self.tile, self.overlap, self.multiple)
        cols = axis_spans(self.width, self.tile, self.overlap, self.multiple)
        return [Tile(r, c) for r in rows for c in cols]


def _ramp(span: Span, size: int, overlap: int, like: Tensor) -> Tensor:
    """1 inside, linear ramps over ``overlap`` pixels at the sides that meet another tile."""
    weight = torch.ones(span.length, dtype=like.dtype, device=like.device)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=like.dtype, device=like.device) / (overlap + 1)
        if span.start > 0:
            weight[:overlap] = ramp
        if span.start + span.length < size:
            weight[-overlap:] = ramp.flip(0)
    return weight


def tile_batches(tiles: list[Tile], batch: int) -> list[list[Tile]]:
    """The tiles in groups of one window shape, at most ``batch`` each, so each group runs as one batch."""
    shapes: dict[tuple[int, int], list[Tile]] = {}
    for tile in tiles:
        shapes.setdefault((tile.rows.length, tile.cols.length), []).append(tile)
    return [same[i:i + batch] for same in shapes.values() for i in range(0, len(same), batch)]


def _window(tile: Tile) -> tuple[slice, slice]:
    return slice(tile.rows.start, tile.rows.start + tile.rows.length), slice(tile.cols.start, tile.cols.start + tile.cols.length)


def blend_tiles(
    fn: Callable[[Tensor, list[Tile]], Tensor | None], x: Tensor, plan: TilePlan, progress: str | None = None, batch: int = 1
) -> Tensor | None:
    """``fn(windows, tiles)`` on the tiles of x (N, C, H, W), feathered together; groups giving None are left out.

    Up to ``batch`` tiles of one shape go to ``fn`` at once, stacked tile after tile along the batch
    axis (``batch`` x N images). ``progress`` labels a progress bar on a terminal, or else one line on
    stderr when the pass ends.
    """
    if batch < 1:
        raise FusionkitError(f"{param('tile_batch')} must be at least 1, got {batch}")
    out = weights = None
    tiles, started = plan.tiles(), time.perf_counter()
    on_terminal = sys.stderr is not None and sys.stderr.isatty()
    with tqdm(total=len(tiles), desc=progress, disable=not (progress and on_terminal), leave=False, unit="tile") as bar:
        for group in tile_batches(tiles, batch):
            windows = torch.cat([x[(..., *_window(tile))] for tile in group]) if len(group) > 1 else x[(..., *_window(group[0]))]
            pieces = fn(windows, group)
            bar.update(len(group))
            if pieces is None:
                continue
            for tile, piece in zip(group, pieces.float().chunk(len(group))):
                if out is None:
                    out = piece.new_zeros(*piece.shape[:2], plan.height, plan.width)
                    weights = piece.new_zeros(1, 1, plan.height, plan.width)
                rows, cols = _window(tile)
                window = _ramp(tile.rows, plan.height, plan.overlap, piece)[:, None] * _ramp(tile.cols, plan.width, plan.overlap, piece)[None, :]
                out[..., rows, cols] += piece * window
                weights[..., rows, cols] += window
    if progress and not on_terminal:
        print(f"{progress}: {len(tiles)} tiles in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return None if out is None else out / weights


def tiled_apply(
    model: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, multiple: int = 1, batch: int = 1
) -> Tensor:
    """``model`` over overlapping (tile x tile) windows of x (N, C, H, W), whole-image pools included.

    H and W must already be multiples of ``multiple`` (the network's total stride); ``batch`` tiles
    run at once (faster where the device has room, memory grows with it).
    """
    plan = TilePlan(x.shape[-2], x.shape[-1], tile, overlap, multiple)
    groups = pooling_groups(model) if isinstance(model, nn.Module) else {}
    known: dict[_PoolCall, Tensor] = {}
    approximate: list[str] = []
    for number in count(1):
        one_pass = _Pass(model, plan, known, groups)
        out = blend_tiles(one_pass, x, plan, progress=f"tiles, pass {number}", batch=batch)
        approximate += [name for name in one_pass.approximate if name not in approximate]
        if one_pass.gathering is None:
            break
        known.update(one_pass.pooled)
    if approximate:
        warnings.warn(
            f"{param('tile')}: {', '.join(approximate)} {'pools' if len(approximate) == 1 else 'pool'} over each tile, not the "
            "whole image (no fusionkit.wholeimage.WholeImagePool), so the tiled result only approximates the untiled one",
            FusionkitWarning, stacklevel=2,
        )
    return out


class _TileStopped(Exception):
    """Raised inside a tile's forward once the pass has gathered what it came for."""


class _Scale:
    """Where a feature map of the current tile lies in the whole image's feature map of the same scale."""

    def __init__(self, tile: Tile, plan: TilePlan, feature: Tensor) -> None:
        fh, fw = feature.shape[-2:]
        sh, sw = tile.rows.length // fh, tile.cols.length // fw
        if sh * fh != tile.rows.length or sw * fw != tile.cols.length or plan.multiple % sh or plan.multiple % sw:
            raise FusionkitError(
                f"a {fw}x{fh} feature map of a {tile.cols.length}x{tile.rows.length} tile is not at a scale that "
                f"divides the network's multiple ({plan.multiple}); this model cannot run in tiles"
            )
        self.full = (plan.height // sh, plan.width // sw)
        self.window = (slice(tile.rows.start // sh, tile.rows.start // sh + fh), slice(tile.cols.start // sw, tile.cols.start // sw + fw))
        self.owned_global = (slice(tile.rows.own_start // sh, tile.rows.own_end // sh), slice(tile.cols.own_start // sw, tile.cols.own_end // sw))
        self.owned_local = tuple(
            slice(g.start - w.start, g.stop - w.start) for g, w in zip(self.owned_global, self.window)
        )


class _Pass:
    """One pass over the tiles: gathers the pools of one block or, once every pool is known, gives the output."""

    def __init__(self, model, plan: TilePlan, known: dict[_PoolCall, Tensor], groups: dict[WholeImagePool, str]) -> None:
        self.model, self.plan, self.known, self.groups = model, plan, known, groups
        self.gathering: tuple | None = None  # the block (and its call number) whose pools this pass fills
        self.pooled: dict[_PoolCall, Tensor] = {}  # whole-image averages: each pixel added once, by its owner
        self.calls: dict[WholeImagePool, int] = {}  # how often each pool has run in the current tile
        self.tiles: list[Tile] = []  # the tiles of the current batch, in the order of its images
        self.approximate: list[str] | None = None  # layers pooling without WholeImagePool, seen in the first tile

    def __call__(self, windows: Tensor, tiles: list[Tile]) -> Tensor | None:
        self.tiles, self.calls = tiles, {}
        try:
            with pooling_context(self):
                if self.approximate is None:
                    self.approximate = []
                    piece = tile_dependent_layers(self.model, windows, found=self.approximate)
                else:
                    piece = self.model(windows)
        except _TileStopped:
            return None
        return None if self.gathering is not None else piece

    def pool(self, layer: WholeImagePool, x: Tensor) -> Tensor:
        scales = [_Scale(tile, self.plan, x) for tile in self.tiles]
        number = self.calls[layer] = self.calls.get(layer, -1) + 1
        call = (layer, number)  # a pool run twice in one forward (a reused block) keeps two statistics
        if call in self.known:
            stat = self.known[call].to(x.dtype)
            pieces = [
                stat[..., scale.window[0] if layer.output_size[0] is None else slice(None),
                     scale.window[1] if layer.output_size[1] is None else slice(None)]
                for scale in scales
            ]
            return torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        group = (self.groups.get(layer, layer), number)
        if self.gathering is None:
            self.gathering = group
        elif group != self.gathering:
            raise _TileStopped
        for part, scale in zip(x.chunk(len(self.tiles)), scales):
            self._accumulate(call, part, scale)
        return F.adaptive_avg_pool2d(x, layer.output_size)

    def upsample(self, grid: Tensor, like: Tensor) -> Tensor:
        pieces = []
        for part, tile in zip(grid.chunk(len(self.tiles)), self.tiles):
            scale = _Scale(tile, self.plan, like)
            (full_h, full_w), (rows, cols) = scale.full, scale.window
            resize_h = bilinear_matrix(full_h, part.shape[-2], dtype=part.dtype, device=part.device)[rows]
            resize_w = bilinear_matrix(full_w, part.shape[-1], dtype=part.dtype, device=part.device)[cols]
            pieces.append(torch.einsum("hi,ncij,wj->nchw", resize_h, part, resize_w))
        return torch.cat(pieces) if len(pieces) > 1 else pieces[0]

    def _accumulate(self, call: _PoolCall, x: Tensor, scale: _Scale) -> None:
        """Add the owned part of x, pooled along the layer's fixed axes and placed along its kept ones."""
        layer = call[0]
        exact = torch.float32 if x.device.type == "mps" else torch.float64  # sums over many tiles; MPS has no float64
        part = x[..., scale.owned_local[0], scale.owned_local[1]].to(exact)
        (size_h, size_w), (full_h, full_w) = layer.output_size, scale.full
        rows, cols = scale.owned_global
        if size_h is not None:
            part = torch.einsum("ih,nchw->nciw", pooling_matrix(full_h, size_h, dtype=exact, device=x.device)[:, rows], part)
            rows = slice(None)
        if size_w is not None:
            part = torch.einsum("jw,nchw->nchj", pooling_matrix(full_w, size_w, dtype=exact, device=x.device)[:, cols], part)
            cols = slice(None)
        if call not in self.pooled:
            self.pooled[call] = part.new_zeros(*part.shape[:2], size_h or full_h, size_w or full_w)
        self.pooled[call][..., rows, cols] += part
