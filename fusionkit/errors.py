"""User-facing errors: each carries a one-line message the CLI prints without a traceback."""


class FusionkitError(Exception):
    """Base class for mistakes a user can fix (bad option, missing file, unknown name)."""


class UnknownComponentError(FusionkitError, KeyError):
    """A kind or name that no installed plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ComponentConflictError(FusionkitError):
    """Two plugins registered the same kind and name."""


class ComponentOptionError(FusionkitError, TypeError):
    """An option the component's factory does not accept."""


class ContractError(FusionkitError, TypeError):
    """A built component that lacks what its kind's contract (``fusionkit.contracts``) requires."""


class FusionkitWarning(UserWarning):
    """Something a user should know about that does not stop the run (e.g. a broken plugin)."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type when it has none), to quote in a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
