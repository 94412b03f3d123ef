"""Plugin discovery and the plugin manager: entry points -> pluggy -> registry.

Installed distributions are simulated with fake entry points (``fusionkit.plugins.entry_points``
is patched to return the real ones plus fakes), and plugin objects are registered directly on a
fresh manager with ``build_registry(extra_plugins=..., entry_points_too=False)``.
"""

from __future__ import annotations

import types
from importlib.metadata import entry_points as real_entry_points

import pytest
import torch
from torch import nn

import fusionkit
import fusionkit.plugins as plugins
from fusionkit.errors import ComponentConflictError, FusionkitWarning, UnknownComponentError
from fusionkit.plugins import ENTRY_POINT_GROUP, LOAD_PLUGINS_ENV, build_registry, get_registry, set_registry


class Gate(nn.Module):
    """A test attention block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.scale[:, None, None]


def make_plugin(module_name: str, *components: tuple[str, str], fail_after: int | None = None) -> types.ModuleType:
    """A plugin module registering ``components`` ((kind, name) pairs, all built by ``Gate``).

    With ``fail_after=k`` its hook raises after registering the first k components.
    """
    module = types.ModuleType(module_name)

    @fusionkit.hookimpl
    def register_components(register):
        for index, (kind, name) in enumerate(components):
            if fail_after is not None and index == fail_after:
                raise RuntimeError("boom in register_components")
            register(kind, name, Gate)
        if fail_after is not None and fail_after >= len(components):
            raise RuntimeError("boom in register_components")

    module.register_components = register_components
    return module


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: ``.name``, ``.dist`` (name, version), ``.load()``."""

    def __init__(self, name: str, dist: str | None, version: str, target) -> None:
        self.name = name
        self.value = f"{name}_module"
        self.group = ENTRY_POINT_GROUP
        self.dist = types.SimpleNamespace(name=dist, version=version) if dist else None
        self._target = target

    def load(self):
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def installed(monkeypatch):
    """Call with fake entry points to make them look installed next to the real ones."""
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)

    def install(*fakes: FakeEntryPoint, keep_real: bool = True) -> None:
        def fake_entry_points(group):
            assert group == ENTRY_POINT_GROUP
            real = list(real_entry_points(group=group)) if keep_real else []
            return real + list(fakes)

        monkeypatch.setattr(plugins, "entry_points", fake_entry_points)

    return install


def fusionkit_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FusionkitWarning)]


# --- the reference plugins ----------------------------------------------------------------------


def test_reference_plugins_register_through_entry_points(monkeypatch, recwarn):
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)
    registry = build_registry()
    assert fusionkit_warnings(recwarn) == []
    owners = {(c.kind, c.name): (c.plugin, c.entry_point) for c in registry.list()}
    assert owners[("student", "se_strip")] == ("fusionkit", "kd")
    assert owners[("teacher", "ae")] == ("fusionkit", "kd")
    assert owners[("attention", "eca")] == ("fusionkit", "timm")
    assert {c.version for c in registry.list()} == {fusionkit.__version__}


# --- plugin objects registered directly (no installation) ---------------------------------------


def test_plugin_object_on_a_fresh_manager():
    plugin = make_plugin("my_plugin", ("attention", "gate"), ("attention", "gate2"))
    registry = build_registry(extra_plugins=[plugin], entry_points_too=False)
    assert [(c.kind, c.name, c.plugin) for c in registry.list()] == [
        ("attention", "gate", "my_plugin"),
        ("attention", "gate2", "my_plugin"),
    ]
    assert isinstance(registry.create("attention", "gate", 4), Gate)
    # nothing from the installed plugins leaks in, and the process-wide registry is untouched
    assert ("student", "se_strip") not in registry
    assert ("attention", "gate") not in get_registry()


def test_plugin_instance_with_a_method_hook():
    class Plugin:
        @fusionkit.hookimpl
        def register_components(self, register):
            register("attention", "from_method", Gate, "Registered by a method")

    registry = build_registry(extra_plugins=[Plugin()], entry_points_too=False)
    assert registry.get("attention", "from_method").summary == "Registered by a method"


def test_extra_plugins_add_to_installed_ones(installed):
    installed()
    registry = build_registry(extra_plugins=[make_plugin("extra", ("attention", "extra_gate"))])
    assert ("attention", "extra_gate") in registry and ("student", "se_strip") in registry


# --- installed plugins that misbehave ------------------------------------------------------------


def test_plugin_that_fails_to_import_is_skipped_with_a_warning(installed):
    installed(FakeEntryPoint("broken", "fusionkit-broken", "0.3", ImportError("No module named 'missing_dep'")))
    with pytest.warns(FusionkitWarning) as record:
        registry = build_registry()
    (message,) = fusionkit_warnings(record)
    assert "\n" not in message
    assert "'broken'" in message and "fusionkit-broken 0.3" in message
    assert "ImportError: No module named 'missing_dep'" in message
    # everything else keeps working
    assert ("student", "se_strip") in registry and ("attention", "eca") in registry
    assert registry.create("attention", "se", 16) is not None


def test_plugin_that_calls_sys_exit_on_import_is_skipped_with_a_warning(installed):
    """A plugin ending the process as it imports would make every command exit silently."""
    installed(FakeEntryPoint("quitter", "fusionkit-quitter", "0.1", SystemExit(3)))
    with pytest.warns(FusionkitWarning) as record:
        registry = build_registry()
    (message,) = fusionkit_warnings(record)
    assert "'quitter'" in message and "SystemExit" in message
    assert ("student", "se_strip") in registry


def test_plugin_that_fails_while_registering_keeps_what_it_did_and_others_intact(installed):
    partial = make_plugin("half", ("attention", "first"), ("attention", "second"), fail_after=1)
    installed(FakeEntryPoint("half", "fusionkit-half", "1.2", partial))
    with pytest.warns(FusionkitWarning) as record:
        registry = build_registry()
    (message,) = fusionkit_warnings(record)
    assert "'half'" in message and "fusionkit-half" in message
    assert "RuntimeError: boom in register_components" in message
    assert registry.get("attention", "first").plugin == "fusionkit-half"
    assert ("attention", "second") not in registry
    assert ("student", "se_strip") in registry and ("attention", "cbam") in registry


def test_hook_failure_of_a_directly_registered_plugin_warns():
    broken = make_plugin("broken_obj", fail_after=0)
    good = make_plugin("good_obj", ("attention", "good"))
    with pytest.warns(FusionkitWarning, match="'broken_obj'"):
        registry = build_registry(extra_plugins=[broken, good], entry_points_too=False)
    assert registry.names("attention") == ["good"]


def test_same_name_from_two_distributions(installed):
    clone = make_plugin("se_clone", ("attention", "se"), ("attention", "clone_only"))
    installed(FakeEntryPoint("se_clone", "fusionkit-se-clone", "9.9", clone))
    with pytest.warns(FusionkitWarning) as record:
        registry = build_registry()
    (warning,) = fusionkit_warnings(record)
    assert "attention 'se'" in warning
    assert f"fusionkit {fusionkit.__version__}" in warning
    assert "fusionkit-se-clone 9.9" in warning
    with pytest.raises(ComponentConflictError) as info:
        registry.create("attention", "se", 16)
    message = str(info.value)
    assert "\n" not in message
    assert f"fusionkit {fusionkit.__version__}" in message and "fusionkit-se-clone 9.9" in message
    # only the contested name is affected
    assert isinstance(registry.create("attention", "clone_only", 4), Gate)
    assert registry.create("attention", "strip", 16) is not None


def test_entry_point_without_distribution_is_attributed_to_its_name(installed):
    installed(FakeEntryPoint("loose", None, "", make_plugin("loose", ("attention", "loose_gate"))))
    registry = build_registry()
    assert registry.get("attention", "loose_gate").plugin == "loose"


# --- FUSIONKIT_LOAD_PLUGINS -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "present", "absent"),
    [
        ("kd", [("attention", "se"), ("student", "se_strip")], [("attention", "eca"), ("attention", "extra_gate")]),
        ("timm", [("attention", "eca"), ("attention", "timm_se")], [("attention", "se"), ("attention", "extra_gate")]),
        ("fusionkit", [("attention", "se"), ("attention", "eca")], [("attention", "extra_gate")]),  # a distribution
        ("fusionkit-extra", [("attention", "extra_gate")], [("attention", "se"), ("attention", "eca")]),
        (" kd , extra ", [("attention", "se"), ("attention", "extra_gate")], [("attention", "eca")]),
        ("", [], [("attention", "se"), ("attention", "eca"), ("attention", "extra_gate")]),  # nothing
    ],
)
def test_load_plugins_env_narrows_what_loads(installed, monkeypatch, recwarn, allowed, present, absent):
    installed(
        FakeEntryPoint("extra", "fusionkit-extra", "0.1", make_plugin("extra", ("attention", "extra_gate"))),
        FakeEntryPoint("broken", "fusionkit-broken", "0.1", ImportError("broken on purpose")),
    )
    monkeypatch.setenv(LOAD_PLUGINS_ENV, allowed)
    registry = build_registry()
    assert all(key in registry for key in present)
    assert not any(key in registry for key in absent)
    # the broken plugin was not asked to load, so nothing warns: this is how to isolate one
    assert fusionkit_warnings(recwarn) == []


def test_load_plugins_env_does_not_limit_plugin_objects(monkeypatch):
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "nothing-matches-this")
    registry = build_registry(extra_plugins=[make_plugin("direct", ("attention", "direct_gate"))])
    assert registry.names("attention") == ["direct_gate"]


def test_load_plugins_env_matches_distribution_names_as_pip_does(installed, monkeypatch):
    installed(FakeEntryPoint("extra", "fusionkit-extra", "0.1", make_plugin("extra", ("attention", "extra_gate"))))
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "Fusionkit_Extra")
    assert ("attention", "extra_gate") in build_registry()


# --- the process-wide registry ---------------------------------------------------------------------


def test_set_registry_swaps_and_resets_the_process_wide_registry(restore_registry):
    original = restore_registry
    assert get_registry() is original and get_registry() is get_registry()
    mine = build_registry(extra_plugins=[make_plugin("mine", ("attention", "mine"))], entry_points_too=False)
    set_registry(mine)
    assert [c.name for c in fusionkit.available()] == ["mine"]
    assert isinstance(fusionkit.create("attention", "mine", 3), Gate)
    with pytest.raises(UnknownComponentError, match="no student named 'se_strip'"):
        fusionkit.create("student", "se_strip")
    set_registry(None)  # reset: rebuilt from the installed plugins on next use
    rebuilt = get_registry()
    assert rebuilt is not mine and rebuilt is not original
    assert ("student", "se_strip") in rebuilt and ("attention", "mine") not in rebuilt


# --- known core bugs (see the report that came with these tests); each flips to XPASS when fixed --


def test_entry_point_names_only_need_to_be_unique_within_a_distribution(installed):
    installed(FakeEntryPoint("kd", "fusionkit-other", "2.0", make_plugin("other_kd", ("attention", "other"))))
    registry = build_registry()
    assert registry.get("attention", "other").plugin == "fusionkit-other"


def test_module_named_by_two_entry_points_does_not_crash_discovery(installed):
    import fusionkit_kd

    installed(FakeEntryPoint("kd_alias", "fusionkit-alias", "1.0", fusionkit_kd))
    registry = build_registry()
    assert ("student", "se_strip") in registry


def test_installed_plugin_also_given_as_an_object_is_registered_once(installed):
    import fusionkit_kd

    installed()
    registry = build_registry(extra_plugins=[fusionkit_kd])
    assert registry.get("student", "se_strip").plugin == "fusionkit"


def test_presets_find_parts_in_the_registry_that_builds_them():
    registry = build_registry(extra_plugins=[make_plugin("local", ("attention", "local_gate"))])
    registry.create("student", "se_strip", channel_attention="local_gate", width=8)
