"""``fusionkit fuse``: a thin wrapper over :mod:`fusionkit.inference.fuse`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Fused image (.png, .jpg or .tif).")
@click.option("--checkpoint", type=click.Path(), help="Student checkpoint, or a run folder  [default: the latest run's student]")
@click.option("--method", help="A training-free method instead of a checkpoint (`fusionkit plugins --kind method` lists them).")
@click.option("--tile", type=int, help="Fuse in overlapping tiles of this size (multiple of 4) to bound memory on large photos; whole-image attention statistics are gathered over all tiles first.")
@click.option("--overlap", default=64, show_default=True, help="Overlap between tiles, in pixels.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="Output bit depth (16 for PNG/TIFF).")
@click.option("--device", default="auto", show_default=True)
def fuse(inputs, output, checkpoint, method, tile, overlap, bits, device) -> None:
    """Fuse differently-exposed photos of one scene (e.g. under.jpg over.jpg) into OUTPUT."""
    from ..inference.fuse import fuse_files

    written = fuse_files([Path(p) for p in inputs], Path(output), checkpoint=Path(checkpoint) if checkpoint is not None else None,
                         method=method, tile=tile, overlap=overlap, bits=int(bits), device=device)
    click.echo(f"wrote {written}")
