"""The ``fusionkit`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import os
import warnings

import click

from .. import __version__
from ..data.io import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV
from ..inference.hardware import keep_freed_memory
from ..registry import KINDS
from .group import FusionkitGroup, one_line_warning


def _set_max_pixels(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """Set the pixel limit through the environment, so the command's DataLoader worker processes apply it too."""
    if value is not None:
        os.environ[MAX_PIXELS_ENV] = str(value)


@click.group(cls=FusionkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fusionkit")
@click.option("--max-pixels", type=click.IntRange(min=0), metavar="N", expose_value=False, callback=_set_max_pixels,
              help=f"Refuse any image file that declares more than N pixels, before decoding it; 0: no limit.  "
                   f"[default: ${MAX_PIXELS_ENV}, else {DEFAULT_MAX_PIXELS:,}]")
def cli() -> None:
    """Fuse differently-exposed photos of one scene into one well-exposed image."""


@cli.command()
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {kind, name, plugin, version, summary, conflict}; conflict lists the plugins that claim one name.")
def plugins(kind: str | None, as_json: bool) -> None:
    """List installed components by kind, with the plugin distribution that registered each.

    A name that two plugins register cannot be used; its row says CONFLICT and names both.
    """
    from .. import available
    from ..plugins import get_registry

    components = available(kind)
    conflicts = {key: [f"{c.plugin} {c.version}".strip() for c in claimants] for key, claimants in get_registry().conflicts(kind).items()}
    if as_json:
        click.echo(json.dumps([{**c.as_dict(), "conflict": conflicts.get((c.kind, c.name), [])} for c in components], indent=2))
        return
    rows = [_plugin_row(c, conflicts.get((c.kind, c.name))) for c in components]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("KIND", "NAME", "PLUGIN"))]
    click.echo(f"{'KIND':<{widths[0]}}  {'NAME':<{widths[1]}}  {'PLUGIN':<{widths[2]}}  SUMMARY")
    for row in rows:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")


def _plugin_row(component, claimants: list[str] | None) -> tuple[str, str, str, str]:
    """(kind, name, plugin, summary) for the table; a conflicting name shows every claimant and that it is unusable."""
    if not claimants:
        return component.kind, component.name, f"{component.plugin} {component.version}".strip(), component.summary
    summary = "CONFLICT: unusable; uninstall one of these plugins, or narrow FUSIONKIT_LOAD_PLUGINS"
    return component.kind, component.name, " + ".join(claimants), summary


def _add_commands() -> None:
    from .bench import bench
    from .fuse import fuse
    from .score import score
    from .data import data
    from .train import train

    for command in (data, train, bench, fuse, score):
        cli.add_command(command)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    keep_freed_memory()
    warnings.formatwarning = one_line_warning
    cli.main(args=argv, prog_name="fusionkit")


if __name__ == "__main__":
    main()
