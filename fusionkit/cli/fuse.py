"""``fusionkit fuse``: a thin wrapper over :mod:`fusionkit.inference.fuse` (one bracket) and
:mod:`fusionkit.inference.batch` (every bracket of a folder)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ..errors import FusionkitError, param
from ..inference.fuse import DEFAULT_WORK_SIZE
from ..inference.hardware import PRECISIONS
from .group import in_flags

#: Options that apply to a folder of brackets only, by parameter name.
FOLDER_ONLY = ("group_gap", "group_size", "image_format", "overwrite", "workers")


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), metavar="OUTPUT", help="Fused image (.png, .jpg or .tif); for an IN_DIR, the folder the fused brackets go to.")
@click.option("--checkpoint", type=click.Path(), help="Student checkpoint, or a run folder  [default: the latest run's student]")
@click.option("--method", help="A training-free method instead of a checkpoint (`fusionkit plugins --kind method` lists them).")
@click.option("--tile", type=int, help="Fuse in overlapping tiles of this size (multiple of 4) to bound memory on large photos; whole-image attention statistics are gathered over all tiles first.")
@click.option("--overlap", default=64, show_default=True, help="Overlap between tiles, in pixels.")
@click.option("--tile-batch", type=int, help="Tiles run at once  [default: 1 on a CPU, 8 on a GPU]")
@click.option("--bits", type=click.Choice(["8", "16", "32"]), default="8", show_default=True, help="Output bit depth: 16 for PNG and TIFF, 32 (float) for TIFF.")
@click.option("--align", "align", metavar="NAME", help="Align the exposures first (`fusionkit plugins --kind align`): homography (camera turned or moved a little, handheld), mtb (shifts only) or none; the result is cropped to the area every exposure covers, and an unreliable estimate falls back to none with a warning.  [default: homography where installed, else none]")
@click.option("--deghost/--no-deghost", default=False, show_default=True, help="Take moving content (people, leaves, water) from one exposure, the best-exposed, so it appears once.")
@click.option("-v", "--verbose", is_flag=True, help="Say how the exposures were ordered, the transform each was aligned by, and what deghosting replaced.")
@click.option("--work-size", type=int, default=DEFAULT_WORK_SIZE, show_default=True, help="Long side, in pixels, at which a weight-map student looks at the photos; its weights come back to full resolution by a guided filter and the photos are blended at full resolution. 0: run the network at full resolution.")
@click.option("--refine-steps", type=int, metavar="N", help="Steps of per-image MEF-SSIM ascent (mef_opt's) that correct the student's weights before the blend: a better fusion, at about 0.3 s a step per megapixel (of a copy at most 2048 px long) on a 2-core CPU; 0 skips it.  [default: the checkpoint's; 10 for the shipped student]")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="The network's number format; auto uses bf16 only where this machine computes it natively and it measured faster; fp16 needs CUDA.")
@click.option("--threads", type=int, help="CPU threads, shared among --workers  [default: one per physical core]")
@click.option("--device", default="auto", show_default=True)
@click.option("--group-gap", type=float, metavar="SECONDS", help="IN_DIR: group its loose photos into brackets by EXIF capture time; a new bracket starts where more than SECONDS pass since the previous shot.")
@click.option("--group-size", type=int, metavar="N", help="IN_DIR: group its loose photos into brackets of N, in file-name order.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg", "tif"]), help="IN_DIR: the format of the fused images  [default: that of each bracket's photos (tif for RAW files and --bits 32; png for JPEG photos with --bits 16)]")
@click.option("--overwrite", is_flag=True, help="IN_DIR: fuse again the brackets whose output exists (by default they are skipped, so a rerun finishes an interrupted batch).")
@click.option("--workers", type=int, default=1, show_default=True, help="IN_DIR: processes fusing brackets side by side, each with its own model and an equal share of --threads.")
def fuse(inputs, output, checkpoint, method, tile, overlap, tile_batch, bits, align, deghost, verbose, work_size, refine_steps, precision,
         threads, device, group_gap, group_size, image_format, overwrite, workers) -> None:
    """Fuse differently-exposed photos of one scene into OUTPUT, or every bracket of a folder.

    \b
      fusionkit fuse under.jpg over.jpg -o fused.jpg
      fusionkit fuse IN_DIR -o OUT_DIR

    The photos are put darkest first (by EXIF exposure, else brightness), aligned (--align) and, with --deghost,
    deghosted before they are fused.

    IN_DIR's brackets are its subfolders (two or more photos each), or its loose photos grouped with --group-gap or
    --group-size. Each is written to OUT_DIR/<bracket>.<format>, named after its subfolder or its first photo; one
    whose output exists is skipped. The model is loaded once; a bracket that fails is one line and the others are
    still fused, and the command then exits with 1. Last comes one line: brackets fused, skipped, failed, and time.
    """
    from ..inference.fuse import FuserOptions, fuse_files
    from ..inference.prepare import BracketSteps

    fusing = {"checkpoint": Path(checkpoint) if checkpoint is not None else None, "method": method, "tile": tile,
              "overlap": overlap, "tile_batch": tile_batch, "work_size": work_size or None, "precision": precision,
              "threads": threads, "device": device, "steps": BracketSteps(align=align, deghost=deghost, verbose=verbose),
              "refine_steps": refine_steps}
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        fuse_each_bracket(Path(inputs[0]), Path(output), FuserOptions(**fusing), bits=int(bits), group_gap=group_gap,
                    group_size=group_size, image_format=image_format, overwrite=overwrite, workers=workers)
        return
    context = click.get_current_context()
    given = [name for name in FOLDER_ONLY if context.get_parameter_source(name) is not ParameterSource.DEFAULT]
    if given:
        raise FusionkitError(f"{param(given[0])} applies to a folder of brackets; give one folder: fuse IN_DIR {param('output')} OUT_DIR")
    folder = next((path for path in inputs if Path(path).is_dir()), None)
    if folder is not None:
        raise FusionkitError(f"{folder} is a folder: give image files of one scene, or a single folder of brackets")
    written = fuse_files([Path(p) for p in inputs], Path(output), bits=int(bits), **fusing)
    click.echo(f"wrote {written}")


def fuse_each_bracket(folder: Path, out_dir: Path, options, **batch) -> None:
    """Every bracket of ``folder``: a line per failed bracket as it fails, the summary last, exit 1 if any failed."""
    from tqdm import tqdm

    from ..inference.batch import fuse_folder

    def report(name: str, why: str) -> None:
        tqdm.write(f"Error: bracket {name}: {in_flags(why)}", file=sys.stderr)

    summary = fuse_folder(folder, out_dir, options, on_failure=report, **batch)
    click.echo(str(summary))
    if summary.failed:
        raise click.exceptions.Exit(1)
