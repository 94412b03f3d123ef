"""The component registry: kind + name -> factory, with the plugin that registered it."""

from __future__ import annotations

import contextvars
import difflib
import fnmatch
import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from .contracts import CONTRACTS
from .errors import (
    ComponentConflictError,
    ComponentOptionError,
    ContractError,
    FusionkitWarning,
    UnknownComponentError,
)

#: Every kind a plugin may register: one per contract in ``fusionkit.contracts``. `method` and
#: `dataset` are training-free fusion methods and dataset readers; `metric` scores a fused image,
#: `loss` is a weighted training term, `recipe` a way to train (its stages), `pretrained` a shipped student checkpoint.
KINDS = tuple(CONTRACTS)


#: The registry whose ``create`` is running, so the parts a preset builds by name come from it.
_active: contextvars.ContextVar["Registry | None"] = contextvars.ContextVar("fusionkit_registry", default=None)


def active_registry() -> "Registry | None":
    """The registry currently building a component, if any (see ``fusionkit.create``)."""
    return _active.get()


@dataclass(frozen=True)
class Component:
    """One registered component and where it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    summary: str
    plugin: str
    version: str
    entry_point: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "version": self.version,
            "summary": self.summary,
            "entry_point": self.entry_point,
        }


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Holds components by (kind, name); records name collisions instead of hiding them."""

    def __init__(self) -> None:
        self._components: dict[tuple[str, str], Component] = {}
        self._conflicts: dict[tuple[str, str], list[Component]] = {}

    def register(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any],
        summary: str | None = None,
        *,
        plugin: str = "unknown",
        version: str = "",
        entry_point: str = "",
    ) -> Component:
        """Add a component; a second plugin claiming the same kind+name makes the name ambiguous."""
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; kinds are: {', '.join(KINDS)}")
        if not callable(factory):
            raise TypeError(f"factory for {kind} {name!r} is not callable")
        component = Component(kind, name, factory, summary or _first_doc_line(factory), plugin, version, entry_point)
        key = (kind, name)
        existing = self._components.get(key)
        if existing is not None:
            claimants = self._conflicts.setdefault(key, [existing])
            claimants.append(component)
            warnings.warn(_conflict_message(kind, name, claimants), FusionkitWarning, stacklevel=2)
            return component
        self._components[key] = component
        return component

    def get(self, kind: str, name: str) -> Component:
        """Look a component up; unknown or ambiguous names raise a one-line error."""
        if kind not in KINDS:
            raise UnknownComponentError(
                f"unknown component kind {kind!r}{_suggest(kind, KINDS)}; kinds are: {', '.join(KINDS)}"
            )
        key = (kind, name)
        if key in self._conflicts:
            raise ComponentConflictError(_conflict_message(kind, name, self._conflicts[key]))
        try:
            return self._components[key]
        except KeyError:
            names = self.names(kind)
            known = f"; available: {', '.join(names)}" if names else "; no plugin registers any"
            raise UnknownComponentError(
                f"no {kind} named {name!r}{_suggest(name, names)}{known}"
            ) from None

    def create(self, kind: str, name: str, *args: Any, **options: Any) -> Any:
        """Build a component, checking its options against the factory's signature first and the
        result against its kind's contract after."""
        component = self.get(kind, name)
        _check_options(component, args, options)
        token = _active.set(self)
        try:
            built = component.factory(*args, **options)
        finally:
            _active.reset(token)
        _check_contract(component, built)
        return built

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self._components if k == kind)

    def conflicts(self, kind: str | None = None) -> dict[tuple[str, str], list[Component]]:
        """Names that more than one plugin registered (unusable until one goes), with every claimant."""
        return {key: list(claimants) for key, claimants in self._conflicts.items() if kind is None or key[0] == kind}

    def list(self, kind: str | None = None, pattern: str = "*") -> list[Component]:
        """Components sorted by kind then name, optionally of one kind and matching a glob."""
        found = [
            c
            for (k, n), c in self._components.items()
            if (kind is None or k == kind) and fnmatch.fnmatch(n, pattern)
        ]
        return sorted(found, key=lambda c: (KINDS.index(c.kind), c.name))

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._components


def _suggest(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _conflict_message(kind: str, name: str, claimants: list[Component]) -> str:
    owners = " and ".join(f"{c.plugin} {c.version}".strip() for c in claimants)
    return (
        f"{kind} {name!r} is registered by both {owners}; uninstall one, or narrow "
        "FUSIONKIT_LOAD_PLUGINS to the one you want"
    )


def _check_contract(component: Component, built: Any) -> None:
    contract = CONTRACTS[component.kind]
    problem = contract.problem(built, component.factory)
    if problem is not None:
        raise ContractError(
            f"{component.kind} {component.name!r} from plugin {component.plugin} {component.version}".rstrip()
            + f" breaks the {component.kind} contract (fusionkit.api.{contract.protocol.__name__}): {problem}"
        )


def _check_options(component: Component, args: tuple, options: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(component.factory)
    except (TypeError, ValueError):
        return
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for option in options:
        if option not in accepted:
            raise ComponentOptionError(
                f"{component.kind} {component.name!r} has no option {option!r}"
                f"{_suggest(option, accepted)}; options: {', '.join(accepted) or 'none'}"
            )
    try:
        signature.bind(*args, **options)
    except TypeError as exc:
        raise ComponentOptionError(f"{component.kind} {component.name!r}: {exc}") from None
