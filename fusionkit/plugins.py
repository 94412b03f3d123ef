"""Plugin discovery: entry points in group ``fusionkit`` -> pluggy -> the component registry."""

from __future__ import annotations

import os
import re
import warnings
from importlib.metadata import entry_points
from typing import Iterable

import pluggy

from . import hookspecs
from .errors import FusionkitWarning
from .registry import Registry

ENTRY_POINT_GROUP = "fusionkit"
#: Comma-separated entry-point or distribution names; when set, only those plugins load.
LOAD_PLUGINS_ENV = "FUSIONKIT_LOAD_PLUGINS"

_registry: Registry | None = None


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("fusionkit")
    pm.add_hookspecs(hookspecs)
    return pm


def _normalise(name: str) -> str:
    """Distribution names compare as pip compares them (PEP 503): case, '-', '_' and '.' alike."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed() -> set[str] | None:
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return {_normalise(part.strip()) for part in value.split(",") if part.strip()}


def load_entry_points(pm: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    """Import every ``fusionkit`` entry point; a plugin that fails to import is skipped with a warning.

    Returns plugin name -> (distribution name, version), used to attribute registrations.
    """
    owners: dict[str, tuple[str, str]] = {}
    allowed = _allowed()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist_name = ep.dist.name if ep.dist else ep.name
        version = ep.dist.version if ep.dist else ""
        if allowed is not None and not allowed & {_normalise(ep.name), _normalise(dist_name)}:
            continue
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a broken plugin (even one calling sys.exit) must not take the others down
            warnings.warn(
                f"plugin {ep.name!r} from {dist_name} {version} failed to import and was skipped: "
                f"{type(exc).__name__}: {exc}",
                FusionkitWarning,
                stacklevel=2,
            )
            continue
        if pm.is_registered(plugin):  # a second entry point naming an already loaded module
            warnings.warn(
                f"plugin {ep.name!r} from {dist_name} {version} is the module already loaded as "
                f"{pm.get_name(plugin)!r}; skipped",
                FusionkitWarning,
                stacklevel=2,
            )
            continue
        # entry-point names are unique within a distribution only
        name = ep.name if not pm.has_plugin(ep.name) else f"{dist_name}:{ep.name}"
        pm.register(plugin, name=name)
        owners[name] = (dist_name, version)
    return owners


def collect(
    registry: Registry, pm: pluggy.PluginManager, owners: dict[str, tuple[str, str]] | None = None
) -> Registry:
    """Call each plugin's ``register_components`` with a ``register`` bound to that plugin."""
    owners = owners or {}
    for impl in pm.hook.register_components.get_hookimpls():
        dist_name, version = owners.get(impl.plugin_name, (impl.plugin_name, ""))

        def register(kind, name, factory, summary=None, _d=dist_name, _v=version, _e=impl.plugin_name):
            return registry.register(kind, name, factory, summary, plugin=_d, version=_v, entry_point=_e)

        try:
            impl.function(register=register)
        except (Exception, SystemExit) as exc:
            warnings.warn(
                f"plugin {impl.plugin_name!r} ({dist_name}) failed while registering components "
                f"and may be incomplete: {type(exc).__name__}: {exc}",
                FusionkitWarning,
                stacklevel=2,
            )
    return registry


def build_registry(extra_plugins: Iterable[object] = (), entry_points_too: bool = True) -> Registry:
    """A fresh registry from installed plugins plus any plugin objects given (handy in tests)."""
    pm = plugin_manager()
    owners = load_entry_points(pm) if entry_points_too else {}
    for index, plugin in enumerate(extra_plugins):
        if pm.is_registered(plugin):  # already loaded from its entry point
            continue
        name = getattr(plugin, "__name__", None) or f"plugin-{index}"
        if pm.has_plugin(name):
            name = f"{name}-{index}"
        pm.register(plugin, name=name)
    return collect(Registry(), pm, owners)


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        _registry = build_registry()
    return _registry


def set_registry(registry: Registry | None) -> None:
    """Replace (or with None, reset) the process-wide registry; tests use this."""
    global _registry
    _registry = registry
