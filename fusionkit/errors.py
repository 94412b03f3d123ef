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


class FusionkitWarning(UserWarning):
    """Something a user should know about that does not stop the run (e.g. a broken plugin)."""
