"""Fuse image files with a trained student or a training-free method (``fusionkit fuse``)."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import create
from ..runs.checkpoint import load_model
from ..data.io import read_image, write_image
from .device import pick_device
from ..errors import FusionkitError
from .pipeline import fuse_with_model
from ..runs.folders import checkpoints_in, default_student


def read_exposures(paths: list[Path]) -> torch.Tensor:
    """Read the exposures into (1, K, 3, H, W); sizes must match (the error names both files)."""
    if len(paths) < 2:
        raise FusionkitError("fuse needs at least two exposures of the same scene")
    images = [read_image(p) for p in paths]
    for path, image in zip(paths[1:], images[1:]):
        if image.shape != images[0].shape:
            raise FusionkitError(
                f"exposures differ in size: {paths[0]} is {images[0].shape[2]}x{images[0].shape[1]}, "
                f"{path} is {image.shape[2]}x{image.shape[1]}"
            )
    return torch.stack(images)[None]


def fuse_files(
    inputs: list[Path], output: Path, *, checkpoint: Path | None = None, method: str | None = None,
    tile: int | None = None, overlap: int = 64, bits: int = 8, device: str = "auto",
) -> Path:
    """Fuse ``inputs`` into ``output``; by default with the latest trained run's student."""
    if checkpoint and method:
        raise FusionkitError("give --checkpoint or --method, not both")
    if method and tile:
        raise FusionkitError(f"--tile applies to a student checkpoint; --method {method} fuses the whole image at once")
    if Path(output).suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise FusionkitError(f"-o {output}: use a .png, .jpg or .tif file name")
    dev = pick_device(device)
    exposures = read_exposures([Path(p) for p in inputs]).to(dev)
    with torch.inference_mode():
        if method:
            fuser = create("method", method).to(dev).eval()
            if getattr(fuser, "needs_reference", False):
                raise FusionkitError(f"--method {method} is an oracle that needs the ground truth; it cannot fuse new photos")
            fused = fuser(exposures).clamp(0, 1)
        else:
            model, recipe = load_model(checkpoints_in(checkpoint)[0] if checkpoint else default_student(), map_location="cpu")
            if recipe.get("kind") != "student":
                raise FusionkitError(f"--checkpoint {checkpoint}: holds a {recipe.get('kind')}, fuse needs a student")
            fused = fuse_with_model(model.to(dev).eval(), exposures, recipe.get("color", "rgb"), tile=tile, overlap=overlap)
    return write_image(output, fused[0].cpu(), bits=bits)
