"""Fuse image files with a trained student or a training-free method (``fusionkit fuse``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch

from ..data.io import write_image
from ..data.stack import read_stack
from ..errors import FusionkitError, param
from ..files import check_writable
from .device import pick_device
from .fuser import Fuser
from .hardware import PRECISIONS, is_out_of_memory, set_threads


#: Long side, in pixels, at which a weight-map student looks at the photos (see ``fuse_at_work_size``).
DEFAULT_WORK_SIZE = 512
GPU_TILE_BATCH = 8  # tiles per batch on a GPU: small tiles alone leave it mostly idle


def read_exposures(paths: list[Path]) -> torch.Tensor:
    """Read the exposures to fuse into (1, K, 3, H, W): at least two, of one size."""
    if len(paths) < 2:
        raise FusionkitError("fuse needs at least two exposures of the same scene")
    return read_stack(paths)


def fuse_files(
    inputs: list[Path], output: Path, *, checkpoint: Path | None = None, method: str | None = None,
    tile: int | None = None, overlap: int = 64, bits: int = 8, device: str = "auto",
    work_size: int | None = DEFAULT_WORK_SIZE, precision: str = "auto", threads: int | None = None,
    tile_batch: int | None = None,
) -> Path:
    """Fuse ``inputs`` into ``output``; by default with the latest trained run's student.

    Everything that can be checked without the pixels is checked before the photos are read, and
    ``output`` is written atomically, so a failed or interrupted call leaves no file changed.
    A weight-map student runs at ``work_size`` (long side; ``None``: full resolution) unless tiled;
    tiles run ``tile_batch`` at a time (``None``: :func:`default_tile_batch` for the device).
    """
    inputs, output = [Path(p) for p in inputs], Path(output)
    check_request(inputs, output, checkpoint=checkpoint, method=method, tile=tile, bits=bits)
    if work_size is not None and work_size < 16:
        raise FusionkitError(f"{param('work_size')} {work_size}: give 16 pixels or more, or 0 for full resolution")
    if precision not in PRECISIONS:
        raise FusionkitError(f"{param('precision')} {precision}: use one of {', '.join(PRECISIONS)}")
    if tile_batch is not None and tile_batch < 1:
        raise FusionkitError(f"{param('tile_batch')} {tile_batch}: give 1 or more tiles")
    set_threads(threads)
    dev = pick_device(device)
    options = {"work_size": work_size, "tile": tile, "overlap": overlap, "tile_batch": tile_batch or default_tile_batch(dev),
               "precision": precision}
    if method is not None:
        fuser = Fuser.from_method(method, **options)
        if fuser.oracle:
            raise FusionkitError(f"{param('method')} {method} is an oracle that needs the ground truth; it cannot fuse new photos")
    else:
        fuser = Fuser.from_checkpoint(checkpoint, **options) if checkpoint is not None else Fuser.default(**options)
        if fuser.role != "student":
            raise FusionkitError(f"{param('checkpoint')} {checkpoint}: holds a {fuser.role}, fuse needs a student")
        if fuser.num_inputs not in (None, len(inputs)):
            raise FusionkitError(f"{fuser.source} fuses {fuser.num_inputs} exposures, got {len(inputs)}: give {fuser.num_inputs} photos")
    exposures = read_exposures(inputs)
    with torch.inference_mode(), out_of_memory_hint(exposures, dev, method, tile):
        fused = fuser.to(dev)(exposures.to(dev))
    return write_image(output, fused[0].cpu(), bits=bits)


def default_tile_batch(device: torch.device) -> int:
    """Tiles per batch: one on a CPU (bigger batches measured no faster there), several on a GPU."""
    return GPU_TILE_BATCH if device.type == "cuda" else 1


def check_request(
    inputs: list[Path], output: Path, *, checkpoint: Path | None, method: str | None, tile: int | None, bits: int,
) -> None:
    """Refuse, before any work, what could only fail at the end or overwrite a photo being fused."""
    if checkpoint is not None and method is not None:
        raise FusionkitError(f"give {param('checkpoint')} or {param('method')}, not both")
    if method is not None and tile is not None:
        raise FusionkitError(f"{param('tile')} applies to a student checkpoint; {param('method')} {method} fuses the whole image at once")
    suffix = output.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise FusionkitError(f"-o {output}: use a .png, .jpg or .tif file name")
    if bits == 16 and suffix in (".jpg", ".jpeg"):
        raise FusionkitError(f"{param('output')} {output}: JPEG is 8-bit only; use .png or .tif with {param('bits')} 16")
    for path in inputs:
        if same_file(path, output):
            raise FusionkitError(f"-o {output} is the input {path}; fusing would overwrite it, give another file name")
    check_writable(output, param("output"))


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file, however spelt (links, '..', case on macOS)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def out_of_memory_hint(exposures: torch.Tensor, device: torch.device, method: str | None, tile: int | None) -> Iterator[None]:
    """Turn running out of memory into a one-line error giving the photos' size and what to try instead."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(exc):
            raise
        height, width = exposures.shape[-2:]
        if method is not None:
            hint = f"{param('method')} {method} cannot tile; fuse a smaller photo, or use a student checkpoint with {param('tile')} 512"
        elif tile is not None:
            hint = f"try a smaller {param('tile')} than {tile}"
        else:
            hint = f"try {param('tile')} 512 to fuse it in pieces"
        raise FusionkitError(f"out of memory on {device} fusing {width}x{height} photos; {hint}") from None
