"""``fusionkit bench``: a thin wrapper over :mod:`fusionkit.evaluation.bench`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import FusionkitError
from ..inference.hardware import PRECISIONS

#: The picture formats the grid is written in.
GRID_SUFFIXES = (".png", ".jpg", ".jpeg")


@click.command()
@click.option("--data", type=click.Path(file_okay=False), help="Dataset root (exposure-errors or brackets layout); default: the embedded sample set.")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(), help="A student/teacher .safetensors or a run folder; repeatable. Default: the latest run in runs/.")
@click.option("--methods", help="Training-free methods to compare (comma-separated; '' for none)  [default: every registered method but those that optimise each image, such as mef_opt]")
@click.option("--metric", "metrics", multiple=True, help="A metric to compute (repeatable)  [default: every registered metric the data allows]")
@click.option("--exposures", default="2", show_default=True, help="Exposures per bracket scene: 2 = darkest and brightest (the MEF protocol), N spread from darkest to brightest, or 'all'.")
@click.option("--max-side", type=click.IntRange(min=16), help="Downscale test images so their longer side is at most this.")
@click.option("--expert", default="c", show_default=True, help="Ground-truth expert of the test split.")
@click.option("--metric-space", type=click.Choice(["rgb", "y"]), default="rgb", show_default=True, help="Compute PSNR/SSIM on RGB or on luma.")
@click.option("--size", default=512, show_default=True, help="Square size (pixels) of the speed measurement.")
@click.option("--batch", default=1, show_default=True, help="Pairs per call in the speed measurement.")
@click.option("--iters", type=int, help="Timed calls per model  [default: 5 on CPU, 50 on CUDA]")
@click.option("--warmup", default=3, show_default=True, help="Untimed calls before timing.")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="The networks' number format (autocast): auto = bf16 on CUDA, fp32 on CPU; fp16 needs CUDA.")
@click.option("--channels-last/--no-channels-last", default=None, help="[default: on for CUDA]")
@click.option("--compile/--no-compile", "compile_model", default=False, show_default=True)
@click.option("--max-scenes", type=int, help="Evaluate only the first N test scenes.")
@click.option("--no-speed", is_flag=True, help="Skip the speed measurement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every figure as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the table as CSV.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Write the table as Markdown.")
@click.option("--grid", "grid_path", type=click.Path(dir_okay=False), help="Picture grid, PNG or JPEG by its name: inputs | each model | ground truth  [default: bench_grid.png next to --json, or none]")
def bench(data, checkpoints, methods, metrics, exposures, max_side, expert, metric_space, size, batch, iters, warmup, device, precision, channels_last, compile_model,
          max_scenes, no_speed, json_path, csv_path, markdown_path, grid_path) -> None:
    """Quality (PSNR, SSIM, MEF-SSIM, ...) on the test split, and speed, side by side.

    Data without a reference (real brackets) gets the no-reference metrics only.
    """
    from ..evaluation.bench import run_bench
    from ..files import check_writable
    from ..evaluation.report import format_table, write_report
    from ..runs.folders import checkpoints_in, latest_run

    for option, value, minimum in (("--size", size, 16), ("--batch", batch, 1), ("--iters", iters, 1), ("--warmup", warmup, 0),
                                   ("--max-scenes", max_scenes, 1)):
        if value is not None and value < minimum:
            raise FusionkitError(f"{option} must be a whole number >= {minimum}, got {value}")
    if grid_path is None and json_path:
        grid_path = str(Path(json_path).with_name("bench_grid.png"))
    if grid_path and Path(grid_path).suffix.lower() not in GRID_SUFFIXES:
        raise FusionkitError(f"--grid {grid_path}: the grid is written as PNG or JPEG; end the name in {', '.join(GRID_SUFFIXES)}")
    outputs = [(option, path) for option, path in (("--json", json_path), ("--csv", csv_path), ("--markdown", markdown_path), ("--grid", grid_path)) if path]
    for index, (option, path) in enumerate(outputs):
        for other, other_path in outputs[:index]:
            if Path(other_path).resolve() == Path(path).resolve():
                raise FusionkitError(f"{other} and {option} name the same file {path}; give each its own")
        check_writable(path, option)  # before the work, not after it
    if checkpoints:
        paths = [p for c in checkpoints for p in checkpoints_in(c)]
    else:
        run = latest_run()
        paths = checkpoints_in(run) if run else []
        click.echo(f"evaluating run {run}" if run else "no trained run in runs/: comparing training-free methods only (train with `fusionkit train`)", err=True)
    if methods is None:
        from .. import available
        from ..plugins import get_registry

        # A name two plugins claim cannot be built: skipped with a warning, so the others still compare.
        claimed_twice = sorted(name for _, name in get_registry().conflicts("method"))
        for name in claimed_twice:
            click.echo(f"warning: method {name} is registered by more than one plugin and is skipped "
                       "(`fusionkit plugins --kind method` shows which)", err=True)
        # Methods that optimise each image (mef_opt) take seconds a pair: only when named.
        names = [c.name for c in available("method")
                 if c.name not in claimed_twice and not getattr(c.factory, "optimises_per_image", False)]
    else:
        names = [m.strip() for m in methods.split(",") if m.strip()]
    if not paths and not names:
        raise FusionkitError("nothing to evaluate: give --checkpoint or --methods")
    if data is None:
        from ..synthetic.sample import ensure_sample

        data = ensure_sample()
    report = run_bench(
        data_root=Path(data), checkpoints=paths, methods=names, expert=expert, space=metric_space, device=device, precision=precision,
        channels_last=channels_last, compile_model=compile_model, size=size, batch=batch, iters=iters, warmup=warmup,
        max_scenes=max_scenes, grid_path=Path(grid_path) if grid_path else None, speed=not no_speed,
        metrics=list(metrics) or None, exposures=_exposures(exposures), max_side=max_side,
    )
    click.echo(format_table(report))
    write_report(report, Path(json_path) if json_path else None, Path(csv_path) if csv_path else None, Path(markdown_path) if markdown_path else None)
    if grid_path:
        click.echo(f"grid: {grid_path}", err=True)


def _exposures(value: str) -> int | str:
    """``--exposures``: 'all' or a whole number of at least 2."""
    if value == "all":
        return value
    if not value.isdigit() or int(value) < 2:
        raise FusionkitError(f"--exposures must be 'all' or a whole number >= 2, got {value!r}")
    return int(value)
