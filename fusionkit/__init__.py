"""fusionkit: fuse differently-exposed photos of one scene into one well-exposed image."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version
from typing import Any

from .errors import FusionkitError
from .hookspecs import hookimpl
from .registry import KINDS, Component

try:
    __version__ = _version("fusionkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["KINDS", "Component", "FusionkitError", "__version__", "available", "component", "create", "hookimpl"]


def _registry():
    """The registry building right now (inside ``create``), else the process-wide one."""
    from .plugins import get_registry
    from .registry import active_registry

    return active_registry() or get_registry()


def create(kind: str, name: str, *args: Any, **options: Any) -> Any:
    """Build the component ``name`` of ``kind`` (e.g. ``create("student", "se_strip", width=32)``)."""
    return _registry().create(kind, name, *args, **options)


def component(kind: str, name: str) -> Component:
    """The registered component ``name`` of ``kind`` (its factory, summary and plugin), unbuilt."""
    return _registry().get(kind, name)


def available(kind: str | None = None, pattern: str = "*") -> list[Component]:
    """Registered components, optionally of one kind and matching a glob pattern."""
    return _registry().list(kind, pattern)
