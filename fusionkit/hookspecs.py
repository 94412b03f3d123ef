"""The extension points a fusionkit plugin implements (pluggy hook specifications)."""

import pluggy

hookspec = pluggy.HookspecMarker("fusionkit")
hookimpl = pluggy.HookimplMarker("fusionkit")


@hookspec
def register_components(register):
    """Register components by calling ``register(kind, name, factory, summary=None)``.

    ``kind`` is one of :data:`fusionkit.registry.KINDS`; ``factory`` builds the component from
    its sizes first (e.g. ``channels``) and then keyword options with defaults, and what it builds
    meets the kind's contract (:data:`fusionkit.contracts.CONTRACTS`, checked by ``create``).
    """
