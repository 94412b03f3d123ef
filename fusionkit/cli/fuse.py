"""``fusionkit fuse``: a thin wrapper over :mod:`fusionkit.inference.fuse`."""

from __future__ import annotations

from pathlib import Path

import click

from ..inference.fuse import DEFAULT_WORK_SIZE
from ..inference.hardware import PRECISIONS


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Fused image (.png, .jpg or .tif).")
@click.option("--checkpoint", type=click.Path(), help="Student checkpoint, or a run folder  [default: the latest run's student]")
@click.option("--method", help="A training-free method instead of a checkpoint (`fusionkit plugins --kind method` lists them).")
@click.option("--tile", type=int, help="Fuse in overlapping tiles of this size (multiple of 4) to bound memory on large photos; whole-image attention statistics are gathered over all tiles first.")
@click.option("--overlap", default=64, show_default=True, help="Overlap between tiles, in pixels.")
@click.option("--tile-batch", type=int, help="Tiles run at once  [default: 1 on a CPU, 8 on a GPU]")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="Output bit depth (16 for PNG/TIFF).")
@click.option("--work-size", type=int, default=DEFAULT_WORK_SIZE, show_default=True, help="Long side, in pixels, at which a weight-map student looks at the photos; its weights come back to full resolution by a guided filter and the photos are blended at full resolution. 0: run the network at full resolution.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="The network's number format; auto uses bf16 only where this machine computes it natively and it measured faster; fp16 needs CUDA.")
@click.option("--threads", type=int, help="CPU threads  [default: one per physical core]")
@click.option("--device", default="auto", show_default=True)
def fuse(inputs, output, checkpoint, method, tile, overlap, tile_batch, bits, work_size, precision, threads, device) -> None:
    """Fuse differently-exposed photos of one scene (such as under.jpg over.jpg) into OUTPUT."""
    from ..inference.fuse import fuse_files

    written = fuse_files([Path(p) for p in inputs], Path(output), checkpoint=Path(checkpoint) if checkpoint is not None else None,
                         method=method, tile=tile, overlap=overlap, bits=int(bits), device=device,
                         work_size=work_size or None, precision=precision, threads=threads, tile_batch=tile_batch)
    click.echo(f"wrote {written}")
