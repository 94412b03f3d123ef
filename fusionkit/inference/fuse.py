"""Fuse image files with a trained student or a training-free method (``fusionkit fuse``).

One bracket goes read -> fuse -> write through :func:`fuse_bracket` with an already built :class:`Fuser`, for a
single ``fuse`` as for every bracket of a folder (:mod:`.batch`); the steps between reading and fusing (order,
alignment, deghosting) belong in :func:`read_bracket`, so both get them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..data.io import write_image
from ..errors import FusionkitError, param
from ..files import check_writable
from .device import pick_device
from .fuser import Fuser
from .hardware import PRECISIONS, is_out_of_memory, set_threads
from .prepare import BracketSteps, read_prepared


#: Long side, in pixels, at which a weight-map student looks at the photos (see ``fuse_at_work_size``).
DEFAULT_WORK_SIZE = 512
GPU_TILE_BATCH = 8  # tiles per batch on a GPU: small tiles alone leave it mostly idle


@dataclass(frozen=True)
class FuserOptions:
    """What to fuse with and how: picklable and hashable, so worker processes build the same Fuser once each.

    ``checkpoint`` or ``method`` (neither: the latest trained run's student, else the shipped one); ``work_size``
    None runs a student at full resolution; ``tile_batch`` None: :func:`default_tile_batch` for the device;
    ``steps``: what happens to each bracket before fusion.
    """

    checkpoint: Path | None = None
    method: str | None = None
    tile: int | None = None
    overlap: int = 64
    tile_batch: int | None = None
    work_size: int | None = DEFAULT_WORK_SIZE
    precision: str = "auto"
    threads: int | None = None
    device: str = "auto"
    steps: BracketSteps = BracketSteps()
    refine_steps: int | None = None  # None: as the checkpoint says

    def check(self) -> None:
        """Refuse options no fuser can use, before anything is loaded."""
        self.steps.check()
        if self.refine_steps is not None:
            if self.method is not None:
                raise FusionkitError(f"{param('refine_steps')} refines a student's weights; {param('method')} {self.method} has none (mef_opt optimises from Mertens' weights)")
            if self.refine_steps < 0:
                raise FusionkitError(f"{param('refine_steps')} {self.refine_steps}: give 0 or more steps")
        if self.checkpoint is not None and self.method is not None:
            raise FusionkitError(f"give {param('checkpoint')} or {param('method')}, not both")
        if self.method is not None and self.tile is not None:
            raise FusionkitError(f"{param('tile')} applies to a student checkpoint; {param('method')} {self.method} fuses the whole image at once")
        if self.work_size is not None and self.work_size < 16:
            raise FusionkitError(f"{param('work_size')} {self.work_size}: give 16 pixels or more, or 0 for full resolution")
        if self.precision not in PRECISIONS:
            raise FusionkitError(f"{param('precision')} {self.precision}: use one of {', '.join(PRECISIONS)}")
        if self.tile_batch is not None and self.tile_batch < 1:
            raise FusionkitError(f"{param('tile_batch')} {self.tile_batch}: give 1 or more tiles")

    def build(self) -> tuple[Fuser, torch.device]:
        """The Fuser these options name, on its device (threads set for this process), and that device."""
        self.check()
        set_threads(self.threads)
        device = pick_device(self.device)
        options = {"work_size": self.work_size, "tile": self.tile, "overlap": self.overlap,
                   "tile_batch": self.tile_batch or default_tile_batch(device), "precision": self.precision}
        if self.method is not None:
            fuser = Fuser.from_method(self.method, **options)
            if fuser.oracle:
                raise FusionkitError(f"{param('method')} {self.method} is an oracle that needs the ground truth; it cannot fuse new photos")
        else:
            model_options = None if self.refine_steps is None else {"refine_steps": self.refine_steps}
            if self.checkpoint is not None:
                fuser = Fuser.from_checkpoint(self.checkpoint, model_options, **options)
            else:
                fuser = Fuser.default(model_options, **options)
            if fuser.role != "student":
                raise FusionkitError(f"{param('checkpoint')} {self.checkpoint}: holds a {fuser.role}, fuse needs a student")
        return fuser.to(device), device


def fuse_files(
    inputs: list[Path], output: Path, *, checkpoint: Path | None = None, method: str | None = None,
    tile: int | None = None, overlap: int = 64, bits: int = 8, device: str = "auto",
    work_size: int | None = DEFAULT_WORK_SIZE, precision: str = "auto", threads: int | None = None,
    tile_batch: int | None = None, steps: BracketSteps = BracketSteps(), refine_steps: int | None = None,
) -> Path:
    """Fuse ``inputs`` into ``output``; by default with the latest trained run's student.

    Everything that can be checked without the pixels is checked before the photos are read, and
    ``output`` is written atomically, so a failed or interrupted call leaves no file changed. ``steps``: the
    bracket's alignment and deghosting (see :class:`.prepare.BracketSteps`).
    A weight-map student runs at ``work_size`` (long side; ``None``: full resolution) unless tiled;
    tiles run ``tile_batch`` at a time (``None``: :func:`default_tile_batch` for the device);
    ``refine_steps`` replaces the student's own (None: as its checkpoint says).
    """
    inputs, output = [Path(p) for p in inputs], Path(output)
    options = FuserOptions(checkpoint=checkpoint, method=method, tile=tile, overlap=overlap, tile_batch=tile_batch,
                           work_size=work_size, precision=precision, threads=threads, device=device, steps=steps,
                           refine_steps=refine_steps)
    options.check()
    check_output(inputs, output, bits)
    fuser, dev = options.build()
    return fuse_bracket(fuser, inputs, output, device=dev, bits=bits, steps=steps)


def fuse_bracket(fuser: Fuser, inputs: list[Path], output: Path, *, device: torch.device, bits: int = 8,
                 steps: BracketSteps = BracketSteps(), label: str | None = None) -> Path:
    """One bracket's files fused into ``output`` (written atomically): :func:`read_bracket`, then :func:`fuse_exposures`."""
    return fuse_exposures(fuser, read_bracket(fuser, inputs, steps, label), output, device=device, bits=bits)


def read_bracket(fuser: Fuser, inputs: list[Path], steps: BracketSteps = BracketSteps(), label: str | None = None) -> torch.Tensor:
    """The bracket's photos as (1, K, 3, H, W), darkest first, aligned and deghosted as ``steps`` say, once it is
    known ``fuser`` can take that many; what is reported starts with ``label`` where given."""
    if fuser.num_inputs not in (None, len(inputs)):
        raise FusionkitError(f"{fuser.source} fuses {fuser.num_inputs} exposures, got {len(inputs)}: give {fuser.num_inputs} photos")
    return read_prepared(inputs, steps, label=label)


def fuse_exposures(fuser: Fuser, exposures: torch.Tensor, output: Path, *, device: torch.device, bits: int = 8) -> Path:
    """Read exposures (1, K, 3, H, W) fused on ``device`` and written to ``output`` atomically."""
    with torch.inference_mode(), out_of_memory_hint(exposures, device, fuser):
        fused = fuser(exposures.to(device))
    return write_image(output, fused[0].cpu(), bits=bits)


def default_tile_batch(device: torch.device) -> int:
    """Tiles per batch: one on a CPU (bigger batches measured no faster there), several on a GPU."""
    return GPU_TILE_BATCH if device.type == "cuda" else 1


def check_output(inputs: list[Path], output: Path, bits: int) -> None:
    """Refuse, before any work, an output that could only fail at the end or would overwrite a photo being fused."""
    suffix = output.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise FusionkitError(f"{param('output')} {output}: use a .png, .jpg or .tif file name")
    if bits == 16 and suffix in (".jpg", ".jpeg"):
        raise FusionkitError(f"{param('output')} {output}: JPEG is 8-bit only; use .png or .tif with {param('bits')} 16")
    if bits == 32 and suffix not in (".tif", ".tiff"):
        raise FusionkitError(f"{param('output')} {output}: 32-bit float is written as TIFF only; use .tif with {param('bits')} 32")
    for path in inputs:
        if same_file(path, output):
            raise FusionkitError(f"{param('output')} {output} is the input {path}; fusing would overwrite it, give another file name")
    check_writable(output, param("output"))


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file, however spelt (links, '..', case on macOS)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def out_of_memory_hint(exposures: torch.Tensor, device: torch.device, fuser: Fuser) -> Iterator[None]:
    """Turn running out of memory into a one-line error giving the photos' size and what to try instead."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(exc):
            raise
        height, width = exposures.shape[-2:]
        if fuser.role == "method":
            hint = f"{param('method')} {fuser.label} cannot tile; fuse a smaller photo, or use a student checkpoint with {param('tile')} 512"
        elif fuser.tile is not None:
            hint = f"try a smaller {param('tile')} than {fuser.tile}"
        else:
            hint = f"try {param('tile')} 512 to fuse it in pieces"
        raise FusionkitError(f"out of memory on {device} fusing {width}x{height} photos; {hint}") from None
