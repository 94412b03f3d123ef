"""``fusionkit data``: commands about datasets (the embedded sample set)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import FusionkitError


@click.group()
def data() -> None:
    """Datasets in Afifi et al.'s layout, and the sample set built from photos already installed."""


@data.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-scenes", type=click.IntRange(min=1), help="A smaller set: this many scenes, round-robin over the photos.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), help="Also write a contact sheet (5 EVs + ground truth) here.")
@click.option("--scene", help="Scene shown by --sheet (default: the first test scene).")
def sample(directory: Path | None, max_scenes: int | None, sheet: Path | None, scene: str | None) -> None:
    """Write the sample set into DIRECTORY.

    DIRECTORY defaults to $FUSIONKIT_HOME/sample, or ~/.cache/fusionkit/sample. Scenes are
    crops of colour photographs shipped with installed packages, rendered at EV -1.5, -1, 0,
    +1, +1.5 by an emulated camera; the ground truth is the photograph. Nothing is downloaded.
    A complete set is left as it is, so a second call returns at once.
    """
    from ..data.layout import EVS, SPLITS
    from ..data.sample import ensure_sample, read_manifest, write_contact_sheet

    try:
        root = ensure_sample(directory, max_scenes=max_scenes)
        if sheet is not None:
            write_contact_sheet(root, sheet, scene)
    except FusionkitError as exc:
        raise click.ClickException(str(exc)) from None
    manifest = read_manifest(root)
    counts = ", ".join(f"{len(manifest['scenes'][split])} {split}" for split in SPLITS)
    click.echo(f"sample set in {root}: {counts} scenes")
    click.echo("mean PSNR vs ground truth (dB): " + "  ".join(f"{ev}: {manifest['psnr_db'][ev]}" for ev in EVS))
    if sheet is not None:
        click.echo(f"contact sheet: {sheet}")
