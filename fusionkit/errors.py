"""User-facing errors: each carries a one-line message the CLI prints without a traceback.

Messages name a parameter through :func:`param`: the library's text reads ``tile_batch``, and the
command line shows the flag the user typed (``--tile-batch``), so only ``cli/`` knows the flags.
"""

from __future__ import annotations

import re
from typing import Callable

_PARAMETER = re.compile("\x02([A-Za-z_][A-Za-z0-9_]*)\x03")


def param(name: str) -> str:
    """``name`` marked as a parameter inside a message; see :func:`spell_parameters`."""
    return f"\x02{name}\x03"


def spell_parameters(message: str, spell: Callable[[str], str] = lambda name: name) -> str:
    """``message`` with each marked parameter written by ``spell`` (by default: its own name)."""
    return _PARAMETER.sub(lambda match: spell(match.group(1)), message)


def message_template(exc: BaseException) -> str:
    """An exception's message with its parameters still marked, for the command line to spell as flags."""
    return str(exc.args[0]) if len(exc.args) == 1 else BaseException.__str__(exc)


class FusionkitError(Exception):
    """Base class for mistakes a user can fix (bad option, missing file, unknown name)."""

    def __str__(self) -> str:
        return spell_parameters(message_template(self))


class UnknownComponentError(FusionkitError, KeyError):
    """A kind or name that no installed plugin registered."""


class ComponentConflictError(FusionkitError):
    """Two plugins registered the same kind and name."""


class ComponentOptionError(FusionkitError, TypeError):
    """An option the component's factory does not accept."""


class ContractError(FusionkitError, TypeError):
    """A built component that lacks what its kind's contract (``fusionkit.contracts``) requires."""


class FusionkitWarning(UserWarning):
    """Something a user should know about that does not stop the run (e.g. a broken plugin)."""

    def __str__(self) -> str:
        return spell_parameters(super().__str__())


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type when it has none), to quote in a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
