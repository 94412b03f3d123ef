"""Errors the data layer raises for files and folders a user can fix; each message is one line."""

from __future__ import annotations

from ..errors import FusionkitError


class ImageFileError(FusionkitError):
    """An image file that cannot be read or written (missing, corrupt, unsupported)."""


class DatasetLayoutError(FusionkitError):
    """A dataset folder that does not follow the expected layout, or scenes that do not line up."""


class DataOptionError(FusionkitError, ValueError):
    """A data option with a value it does not accept (split, pairs, expert, crop size)."""
