"""The command group every ``fusionkit`` command runs under: one-line errors and warnings that name flags."""

from __future__ import annotations

import click

from ..errors import FusionkitError, message_template, spell_parameters


class FusionkitGroup(click.Group):
    """Turns user mistakes (FusionkitError) into one-line errors with exit code 1, naming parameters by the flags
    the user typed, and Ctrl-C into exit code 130."""

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_COMMAND] = command  # meta is shared down the context chain: a nested group records its own
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FusionkitError as exc:
            raise click.ClickException(spell_parameters(message_template(exc), _flags(ctx, ctx.meta.get(_COMMAND)))) from None
        except KeyboardInterrupt:
            click.echo("fusionkit: interrupted", err=True)
            raise click.exceptions.Exit(130) from None


#: Where the command being run is recorded in the context's meta, for error messages to name its flags.
_COMMAND = "fusionkit.command"


def _flags(ctx: click.Context, command: click.Command | None):
    """Parameter name -> what the user typed for it (``tile_batch`` -> ``--tile-batch``, ``output`` -> ``-o``),
    from the command being run and the groups above it; a name no option has stays as it is."""
    spelled = {}
    for params in [c.params for c in (command,) if c is not None] + [c.command.params for c in _chain(ctx)]:
        for parameter in params:
            spelled.setdefault(parameter.name, parameter.opts[0] if isinstance(parameter, click.Option) else parameter.human_readable_name)
    return lambda name: spelled.get(name, name)


def _chain(ctx: click.Context | None):
    while ctx is not None:
        yield ctx
        ctx = ctx.parent


def in_flags(message) -> str:
    """A message (or an exception's) with the parameters it names spelt as the running command's flags."""
    text = message_template(message) if isinstance(message, BaseException) else str(message)
    return spell_parameters(text, _flags(click.get_current_context(silent=True), None))


def one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line; parameters it names appear as the running command's flags."""
    return f"warning: {in_flags(message)}\n"
