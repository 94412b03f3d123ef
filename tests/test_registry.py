"""The component registry on its own: registering, listing, building, and the one-line errors."""

from __future__ import annotations

import pytest
from torch import nn

from fusionkit.errors import (
    ComponentConflictError,
    ComponentOptionError,
    FusionkitError,
    FusionkitWarning,
    UnknownComponentError,
)
from fusionkit.registry import KINDS, Registry


class Block(nn.Identity):
    """A block for tests: remembers how it was built."""

    def __init__(self, channels: int, reduction: int = 16, *, gate: str = "sigmoid") -> None:
        super().__init__()
        self.channels, self.reduction, self.gate = channels, reduction, gate


def passthrough(channels, **options):
    """Accepts any option."""
    block = Block(channels)
    block.options = options
    return block


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.register("attention", "squeeze", Block, plugin="fusionkit-a", version="1.0")
    reg.register("attention", "strip", Block, "Strip pooling", plugin="fusionkit-a", version="1.0")
    reg.register("attention", "anything", passthrough, plugin="fusionkit-b", version="2.0")
    reg.register("backbone", "resnet", Block, plugin="fusionkit-b", version="2.0")
    return reg


def test_create_passes_sizes_and_options(registry):
    block = registry.create("attention", "squeeze", 32, reduction=4, gate="hard")
    assert (block.channels, block.reduction, block.gate) == (32, 4, "hard")
    assert registry.create("attention", "squeeze", channels=8).reduction == 16


def test_component_records_owner_and_summary(registry):
    component = registry.get("attention", "squeeze")
    assert (component.kind, component.name, component.plugin, component.version) == (
        "attention", "squeeze", "fusionkit-a", "1.0"
    )
    assert component.summary == "A block for tests: remembers how it was built."  # first docstring line
    assert registry.get("attention", "strip").summary == "Strip pooling"  # an explicit summary wins
    assert set(component.as_dict()) >= {"kind", "name", "plugin", "version", "summary"}


def test_list_sorted_by_kind_order_then_name_with_glob(registry):
    listed = [(c.kind, c.name) for c in registry.list()]
    assert listed == [
        ("backbone", "resnet"),
        ("attention", "anything"),
        ("attention", "squeeze"),
        ("attention", "strip"),
    ]
    assert [c.name for c in registry.list("attention", "s*")] == ["squeeze", "strip"]
    assert registry.list("teacher") == []
    assert registry.names("attention") == ["anything", "squeeze", "strip"]
    assert ("attention", "strip") in registry and ("attention", "nope") not in registry


def test_register_rejects_unknown_kind_and_non_callable():
    reg = Registry()
    with pytest.raises(ValueError, match="unknown component kind 'attn'"):
        reg.register("attn", "x", Block)
    with pytest.raises(TypeError, match="not callable"):
        reg.register("attention", "x", 42)
    assert reg.list() == []


def test_unknown_name_is_one_line_with_suggestion(registry):
    with pytest.raises(UnknownComponentError) as info:
        registry.create("attention", "stirp", 8)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no attention named 'stirp'")
    assert "did you mean 'strip'" in message
    assert "available: anything, squeeze, strip" in message
    # a user mistake, catchable as such, and KeyError's quoting does not leak into the message
    assert isinstance(info.value, FusionkitError) and isinstance(info.value, KeyError)
    assert not message.startswith(("'", '"'))


def test_unknown_name_without_close_match_lists_what_exists(registry):
    message = str(pytest.raises(UnknownComponentError, registry.get, "attention", "zzzzzz").value)
    assert "did you mean" not in message and "available: anything, squeeze, strip" in message
    message = str(pytest.raises(UnknownComponentError, registry.get, "teacher", "ae").value)
    assert "no plugin registers any" in message


def test_unknown_kind_suggests_a_kind(registry):
    message = str(pytest.raises(UnknownComponentError, registry.create, "atention", "squeeze").value)
    assert "did you mean 'attention'" in message
    assert all(kind in message for kind in KINDS)


def test_unknown_option_names_the_option(registry):
    with pytest.raises(ComponentOptionError) as info:
        registry.create("attention", "squeeze", 8, reduciton=4)
    message = str(info.value)
    assert "\n" not in message
    assert "attention 'squeeze' has no option 'reduciton'" in message
    assert "did you mean 'reduction'" in message
    assert "options: channels, reduction, gate" in message
    assert isinstance(info.value, FusionkitError) and isinstance(info.value, TypeError)


def test_bad_arguments_are_option_errors_not_tracebacks(registry):
    with pytest.raises(ComponentOptionError, match="attention 'squeeze'"):
        registry.create("attention", "squeeze")  # channels missing
    with pytest.raises(ComponentOptionError, match="attention 'squeeze'"):
        registry.create("attention", "squeeze", 8, 4, "sigmoid")  # gate is keyword-only


def test_factory_with_var_keyword_receives_every_option(registry):
    block = registry.create("attention", "anything", 8, whatever=1)
    assert (block.channels, block.options) == (8, {"whatever": 1})


def test_same_name_from_two_plugins_warns_then_refuses_to_guess(registry):
    with pytest.warns(FusionkitWarning) as record:
        registry.register("attention", "squeeze", passthrough, plugin="fusionkit-c", version="3.1")
    warning = str(record[0].message)
    assert "fusionkit-a 1.0" in warning and "fusionkit-c 3.1" in warning
    with pytest.raises(ComponentConflictError) as info:
        registry.create("attention", "squeeze", 8)
    message = str(info.value)
    assert "\n" not in message
    assert "attention 'squeeze' is registered by both fusionkit-a 1.0 and fusionkit-c 3.1" in message
    assert "FUSIONKIT_LOAD_PLUGINS" in message
    assert isinstance(info.value, FusionkitError)
    # the collision is confined to that one name
    assert registry.create("attention", "strip", 8).channels == 8


def test_third_claimant_is_named_too(registry):
    with pytest.warns(FusionkitWarning):
        registry.register("attention", "squeeze", passthrough, plugin="fusionkit-c", version="3.1")
    with pytest.warns(FusionkitWarning, match="fusionkit-d"):
        registry.register("attention", "squeeze", passthrough, plugin="fusionkit-d", version="0.1")
    message = str(pytest.raises(ComponentConflictError, registry.get, "attention", "squeeze").value)
    assert all(owner in message for owner in ("fusionkit-a", "fusionkit-c", "fusionkit-d"))


def test_same_name_in_different_kinds_is_not_a_conflict(registry, recwarn):
    registry.register("backbone", "squeeze", Block, plugin="fusionkit-c", version="3.1")
    assert not [w for w in recwarn if issubclass(w.category, FusionkitWarning)]
    assert registry.get("backbone", "squeeze").plugin == "fusionkit-c"
    assert registry.get("attention", "squeeze").plugin == "fusionkit-a"
