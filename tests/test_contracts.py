"""Kind contracts (fusionkit.contracts): checked when ``create`` builds a component, met by every installed one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import fusionkit
from fusionkit.contracts import CONTRACTS, REQUIRED, BackboneOutput
from fusionkit.errors import ContractError, FusionkitError
from fusionkit.plugins import get_registry
from fusionkit.registry import KINDS, Registry
from fusionkit.training.config import TrainConfig
from tests.fake_exposure_data import make_fake_brackets, make_fake_dataset

PACKAGE = Path(fusionkit.__file__).resolve().parent
#: What a kind's factory takes first (see each contract's ``built_as``): sizes, small so every build is fast, or
#: a recipe's training configuration.
SIZES = {"backbone": (3,), "attention": (8,), "fusion_head": (8,), "recipe": (TrainConfig(),)}
#: Literal attributes the core reads with getattr/hasattr off things that are not components.
NOT_COMPONENT_ATTRIBUTES = {"__name__", "module", "_orig_mod", "_shutdown_workers"}


class Backbone(nn.Module):
    """Declares everything a backbone must, and nothing optional."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.out_channels, self.skip_channels, self.feature_channels = 4, 0, [4]

    def forward(self, x):
        y = self.conv(x)
        return BackboneOutput(y, None, [y])


class NoSkipChannels(Backbone):
    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels)
        del self.skip_channels


class NoForward(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()


class WeightsWithoutFuse(nn.Identity):
    produces = "weights"


class UnavailableWithoutNote(nn.Module):
    needs_reference = False
    available = False

    def forward(self, fused, exposures, reference):
        return fused.mean()


class MetricWithoutDirection:
    name, needs_reference = "odd", False

    def __call__(self, fused, exposures, reference=None):
        return fused.mean(dim=(1, 2, 3))


class WeightHead(nn.Identity):
    produces = "weights"


def wrapped_weight_head(in_channels: int, skip_channels: int = 0, out_channels: int = 3) -> nn.Module:
    """A function factory hides the class's ``produces`` from presets, which read it off the factory."""
    return WeightHead()


@pytest.mark.parametrize(
    ("kind", "factory", "args", "problem"),
    [
        ("backbone", NoSkipChannels, (3,), "it has no attribute 'skip_channels'"),
        ("attention", NoForward, (8,), "it has no method 'forward'"),
        ("attention", lambda channels: (channels,), (8,), "it built a tuple, not a torch.nn.Module"),
        ("student", WeightsWithoutFuse, (), "it has no method 'fuse' (needed when produces is 'weights')"),
        ("loss", UnavailableWithoutNote, (), "it has no attribute 'note' (needed when available is False)"),
        ("metric", MetricWithoutDirection, (), "it has no attribute 'higher_is_better'"),
        ("pretrained", lambda: "weights.safetensors", (), "it has no method '__fspath__'"),
        ("fusion_head", wrapped_weight_head, (8,), "produces is 'weights' on what it builds but 'image' on its factory"),
    ],
)
def test_a_component_breaking_its_contract_is_refused_naming_plugin_and_attribute(kind, factory, args, problem):
    registry = Registry()
    registry.register(kind, "broken", factory, plugin="fusionkit-broken", version="0.2")
    with pytest.raises(ContractError) as info:
        registry.create(kind, "broken", *args)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, FusionkitError)
    expected = CONTRACTS[kind].protocol.__name__
    assert message.startswith(f"{kind} 'broken' from plugin fusionkit-broken 0.2 breaks the {kind} contract (fusionkit.api.{expected}): ")
    assert problem in message


def test_optional_members_may_be_left_out():
    registry = Registry()
    registry.register("backbone", "plain", Backbone, plugin="fusionkit-plain")
    registry.register("method", "plain", nn.Identity, plugin="fusionkit-plain")
    assert not hasattr(registry.create("backbone", "plain", 3), "reduction")
    assert isinstance(registry.create("method", "plain"), nn.Identity)


def test_every_kind_has_one_contract_whose_members_are_sorted_out():
    assert KINDS == tuple(CONTRACTS)
    for kind, contract in CONTRACTS.items():
        members = contract.members()
        assert contract.required() or contract.required_when, kind
        assert set(contract.required()) | set(contract.optional()) | set(contract.required_when) == set(members), kind
        assert all(members[name] is REQUIRED for name in contract.required_when), kind
        assert set(contract.on_factory()) <= set(contract.optional()), kind


@pytest.fixture(scope="module")
def dataset_roots(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("datasets")
    return {
        "exposure_errors": make_fake_dataset(tmp / "afifi", train=1, val=1, test=1, size=16),
        "brackets": make_fake_brackets(tmp / "brackets", {"test": 1}),
    }


@pytest.mark.parametrize("component", get_registry().list(), ids=lambda c: f"{c.kind}-{c.name}")
def test_every_installed_component_meets_its_contract(component, dataset_roots):
    args = (dataset_roots[component.name], "test") if component.kind == "dataset" else SIZES.get(component.kind, ())
    built = fusionkit.create(component.kind, component.name, *args)  # create checks the contract
    assert CONTRACTS[component.kind].problem(built, component.factory) is None


def test_available_lists_the_registry_that_is_building():
    """A factory that looks components up while it is built sees the registry building it, not the process-wide one."""
    seen = []

    def probe() -> nn.Module:
        seen.extend(c.name for c in fusionkit.available("method"))
        return nn.Identity()

    registry = Registry()
    registry.register("method", "probe", probe, plugin="tests")
    registry.create("method", "probe")
    assert seen == ["probe"]
    assert "mertens" in [c.name for c in fusionkit.available("method")]


def component_reads() -> list[tuple[str, str, str, object]]:
    """(file:line, getattr/hasattr, attribute, default or REQUIRED) for each literal attribute the core reads
    that way, outside the contracts themselves."""
    found = []
    for path in sorted(set(PACKAGE.rglob("*.py")) - {PACKAGE / "contracts.py"}):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
                default = ast.literal_eval(node.args[2]) if len(node.args) == 3 and isinstance(node.args[2], ast.Constant) else REQUIRED
                found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", node.func.id, node.args[1].value, default))
    return found


def test_every_attribute_the_core_reads_off_a_component_is_in_a_contract_with_that_default():
    """Grep-proofs the contracts: a new getattr/hasattr of a component attribute needs a contract member."""
    defaults: dict[str, set] = {}
    for contract in CONTRACTS.values():
        for name, default in contract.members().items():
            defaults.setdefault(name, set()).add(default if name in contract.optional() else REQUIRED)
    for where, how, name, default in component_reads():
        if name in NOT_COMPONENT_ATTRIBUTES:
            continue
        assert name in defaults, f"{where}: {how}(..., {name!r}) reads an attribute no contract in fusionkit/contracts.py declares"
        if how == "getattr" and default is not REQUIRED:
            assert default in defaults[name], f"{where}: assumes {name}={default!r} when absent; the contracts say {defaults[name]}"
