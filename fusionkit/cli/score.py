"""``fusionkit score``: a thin wrapper over :func:`fusionkit.evaluation.score.score_files`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from ..errors import FusionkitError

#: Why a metric can have no value: its formula divides 0 by 0 on images without edges or variation.
UNDEFINED = "not defined for these images: flat (no edges or variation), so the formula divides 0 by 0"


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--inputs", "has_inputs", is_flag=True, help="The paths after FUSED are the exposures it was made from, darkest first.")
@click.option("--reference", type=click.Path(path_type=Path), help="A reference image, for full-reference metrics (PSNR, SSIM).")
@click.option("--metric", "metrics", multiple=True, help="A metric to compute (repeatable)  [default: every registered metric the images allow]")
@click.option("--metric-space", type=click.Choice(["rgb", "y"]), default="rgb", show_default=True, help="Full-reference metrics on RGB or on luma.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: metric name to score.")
def score(images: tuple[Path, ...], has_inputs: bool, reference: Path | None, metrics: tuple[str, ...], metric_space: str, as_json: bool) -> None:
    """Score FUSED against its exposures (and a reference) without any model.

    Usage: fusionkit score FUSED --inputs A B [C ...] [--reference R] [--metric NAME ...] [--json]
    """
    from ..evaluation.score import score_files

    fused, *inputs = images
    if not has_inputs or not inputs:
        raise FusionkitError("give the exposures FUSED was made from: fusionkit score FUSED --inputs A B [C ...]")
    scores, unfit = score_files(fused, inputs, reference, list(metrics) or None, metric_space)
    undefined = {name: unfit.get(name, UNDEFINED) for name, value in scores.items() if not math.isfinite(value)}
    if as_json:  # strict JSON: a score that is not a number is null, with the reason beside it
        finite = {name: None if name in undefined else value for name, value in scores.items()}
        click.echo(json.dumps({**finite, **({"undefined": undefined} if undefined else {})}))
        return
    width = max(len(name) for name in scores)
    for name, value in scores.items():
        if name in undefined:
            click.echo(f"{name:<{width}}  undefined ({undefined[name]})")
        else:
            click.echo(f"{name:<{width}}  {value:.4f}" if name != "psnr" else f"{name:<{width}}  {value:.2f} dB")
