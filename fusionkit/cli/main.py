"""The ``fusionkit`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import sys
import warnings

import click

from .. import __version__
from ..errors import FusionkitError
from ..registry import KINDS


class FusionkitGroup(click.Group):
    """Turns user mistakes (FusionkitError) into one-line errors with exit code 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FusionkitError as exc:
            raise click.ClickException(str(exc)) from None


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    return f"warning: {message}\n"


@click.group(cls=FusionkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fusionkit")
def cli() -> None:
    """Fuse differently-exposed photos of one scene into one well-exposed image."""


@cli.command()
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {kind, name, plugin, version, summary}.")
def plugins(kind: str | None, as_json: bool) -> None:
    """List installed components by kind, with the plugin distribution that registered each."""
    from .. import available

    components = available(kind)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in components], indent=2))
        return
    rows = [(c.kind, c.name, f"{c.plugin} {c.version}".strip(), c.summary) for c in components]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("KIND", "NAME", "PLUGIN"))]
    click.echo(f"{'KIND':<{widths[0]}}  {'NAME':<{widths[1]}}  {'PLUGIN':<{widths[2]}}  SUMMARY")
    for row in rows:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")


def _add_commands() -> None:
    from .bench import bench
    from .fuse import fuse
    from .data import data
    from .train import train

    for command in (data, train, bench, fuse):
        cli.add_command(command)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    warnings.formatwarning = _one_line_warning
    try:
        cli.main(args=argv, prog_name="fusionkit")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
