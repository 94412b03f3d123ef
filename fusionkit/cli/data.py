"""``fusionkit data``: commands about datasets (the embedded sample set, brackets rendered from photos)."""

from __future__ import annotations

from pathlib import Path

import click

from .group import FusionkitGroup


@click.group(cls=FusionkitGroup)
def data() -> None:
    """Datasets: the sample set built from photos already installed, and brackets rendered from your photos."""


@data.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-scenes", type=click.IntRange(min=1), help="A smaller set: this many scenes, round-robin over the photos.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), help="Also write a contact sheet (exposures + reference) here, outside DIRECTORY.")
@click.option("--scene", help="Scene shown by --sheet (default: the first test scene, else the first val or train one).")
def sample(directory: Path | None, max_scenes: int | None, sheet: Path | None, scene: str | None) -> None:
    """Write the sample set into DIRECTORY.

    DIRECTORY defaults to $FUSIONKIT_HOME/sample, or ~/.cache/fusionkit/sample. Scenes are
    crops of colour photographs shipped with installed packages, rendered by an emulated camera
    as brackets of 5 exposures (nominal EVs spread over 3.5-6.5 EV per scene); the reference is
    the photograph. Nothing is downloaded. A complete set is left as it is, so a second call
    returns at once.
    """
    from ..files import check_writable
    from ..synthetic.sample import ensure_sample, read_manifest, write_contact_sheet

    if sheet is not None:
        check_writable(sheet, "--sheet")
    root = ensure_sample(directory, max_scenes=max_scenes)
    if sheet is not None:
        write_contact_sheet(root, sheet, scene)
    _describe(f"sample set in {root}", read_manifest(root))
    if sheet is not None:
        click.echo(f"contact sheet: {sheet}")


@data.command()
@click.argument("photos", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--exposures", default=5, show_default=True, type=click.IntRange(min=2), help="Exposures per scene.")
@click.option("--size", type=click.IntRange(min=1), help="Downscale photos whose longer side exceeds this many pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds each scene's camera look, EVs and noise.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), help="Put every scene in this split.")
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Share of scenes in val (by a hash of the name).")
@click.option("--test-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True), help="Share of scenes in test (by a hash of the name).")
@click.option("--overwrite", is_flag=True, help="Replace a set in OUT rendered from other photos or with other options (only the files its manifest lists are deleted).")
def render(
    photos: Path, out: Path, exposures: int, size: int | None, seed: int, split: str | None,
    val_fraction: float, test_fraction: float, overwrite: bool,
) -> None:
    """Render every image below PHOTOS as a bracket of exposures into OUT.

    Each photo becomes a scene rendered by the emulated camera (a random look per scene) at
    nominal EVs evenly spread over a gap drawn per scene, written as OUT/<split>/inputs/<scene>/NN.jpg
    (darkest first) with the photo as OUT/<split>/reference/<scene>.jpg. Scenes are split by a
    hash of their name unless --split is given. A complete set made with the same photos and
    options is left as it is, and an interrupted one rendered again; a set made otherwise is refused
    unless --overwrite is given, and a non-empty OUT that holds no set is refused.
    """
    from ..synthetic.render import render_photos

    def progress(done: int, total: int, scene: str) -> None:
        click.echo(f"[{done}/{total}] {scene}", err=True)

    manifest = render_photos(
        photos, out, exposures=exposures, size=size, seed=seed, split=split,
        val_fraction=val_fraction, test_fraction=test_fraction, progress=progress, overwrite=overwrite,
    )
    _describe(f"rendered set in {out}", manifest)


def _describe(title: str, manifest: dict) -> None:
    """Scenes per split, the nominal EVs (median over scenes) and each exposure's mean PSNR against the reference."""
    from ..synthetic.render import SPLIT_FOLDERS

    counts = ", ".join(f"{len(manifest['scenes'][split])} {split}" for split in SPLIT_FOLDERS.values())
    click.echo(f"{title}: {counts} scenes")
    evs = sorted(manifest["evs"].values(), key=lambda e: e[-1] - e[0])
    median = evs[len(evs) // 2]
    click.echo(
        f"{manifest['exposures']} exposures per scene; median scene: EV {', '.join(f'{ev:+.1f}' for ev in median)}; "
        f"gaps {min(e[-1] - e[0] for e in evs):.1f}-{max(e[-1] - e[0] for e in evs):.1f} EV"
    )
    click.echo("mean PSNR vs reference by exposure (dB): " + "  ".join(f"{k}: {v}" for k, v in manifest["psnr_db"].items()))
