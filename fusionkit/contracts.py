"""One contract per component kind: what a built component offers the core, checked by ``Registry.create``.

Each contract is a ``typing.Protocol``: a member annotated without a value is required; one with a
value is optional, the value being what the core assumes when it is absent; a ``ClassVar`` member
is read off the factory before anything is built, so the factory (a class) declares it too.
``CONTRACTS`` adds what a Protocol cannot say: how the factory is called, whether the result must
be a ``torch.nn.Module``, and members required only when another member has a given value.
Core module: imports nothing of fusionkit, and torch only to check; plugins import it through ``fusionkit.api``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, NamedTuple, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

#: The default of a member that has none: the component must have it.
REQUIRED = inspect.Parameter.empty


class BackboneOutput(NamedTuple):
    """What a backbone returns.

    ``bottleneck``: deepest features; ``skip``: low-level features for the head (or None);
    ``features``: intermediate features offered for distillation, in network order.
    """

    bottleneck: Tensor
    skip: Tensor | None
    features: list[Tensor]


class Attention(Protocol):
    """(N, C, H, W) -> (N, C, H, W), never changing its input in place (it may be a distilled feature map)."""

    def forward(self, x: Tensor) -> Tensor: ...


class Backbone(Protocol):
    """An input (N, in_channels, H, W) -> ``BackboneOutput``, its channel counts declared so that heads
    and distillation losses are sized without running it."""

    out_channels: int
    skip_channels: int
    feature_channels: list[int]
    reduction: int = 1

    def forward(self, x: Tensor) -> BackboneOutput: ...


class FusionHead(Protocol):
    """(bottleneck, skip or None) -> (N, out_channels, H, W) at the backbone's input size: the image in
    [-1, 1], or with ``produces = "weights"`` one logit map per exposure."""

    produces: ClassVar[str] = "image"

    def forward(self, bottleneck: Tensor, skip: Tensor | None = None) -> Tensor: ...


def head_produces_weights(name: str) -> bool:
    """Whether the registered fusion head ``name`` predicts per-exposure logits (``produces = "weights"``), which a
    student blends the photographs by, rather than the image itself."""
    import fusionkit

    return getattr(fusionkit.component("fusion_head", name).factory, "produces", "image") == "weights"


class DistillLoss(Protocol):
    """(student features, teacher features), each in network order -> a scalar tensor."""

    def __call__(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor: ...


class Student(Protocol):
    """Normalised exposures concatenated on channels (N, K * C, H, W) -> the image (N, C, H, W) in
    [-1, 1], or per-exposure logits (N, K, H, W) that ``fuse`` blends; with ``return_features=True``,
    (output, features offered for distillation)."""

    num_inputs: int | None = None
    produces: str = "image"
    multiple_of: int = 1

    def forward(self, x: Tensor, return_features: bool = False) -> Any: ...

    def fuse(self, exposures: Tensor, logits: Any) -> Tensor: ...


class Teacher(Protocol):
    """A reference image (N, in_channels, H, W) in [-1, 1] -> its reconstruction in [-1, 1]; with
    ``return_features=True``, (reconstruction, features offered for distillation)."""

    in_channels: int
    multiple_of: int = 1

    def forward(self, x: Tensor, return_features: bool = False) -> Any: ...


class Method(Protocol):
    """Training-free fusion: exposures (N, K, 3, H, W) in [0, 1], any K >= 1 -> (N, 3, H, W) in [0, 1]."""

    needs_reference: bool = False
    optimises_per_image: ClassVar[bool] = False

    def forward(self, exposures: Tensor, reference: Tensor | None = None) -> Tensor: ...


@dataclass(frozen=True)
class Alignment:
    """What an ``align`` component finds: ``homographies`` (K, 3, 3) float64, each mapping the reference's pixel
    coordinates (x right, y down, pixel centres at integers) to that exposure's, exactly the identity for the
    reference and for exposures already aligned; ``reliable`` False, with a one-line ``note`` saying why, when
    the estimate should not be used."""

    homographies: np.ndarray
    reliable: bool = True
    note: str = ""


class Align(Protocol):
    """Exposures (K, 3, H, W) in [0, 1] of one size, in any order, and the index of the reference -> an ``Alignment``."""

    def __call__(self, exposures: Tensor, reference: int) -> Alignment: ...


class Dataset(Protocol):
    """The scenes of one split, scanned but not decoded: a ``SceneIndex`` or a non-empty list of ``Bracket``."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


class Metric(Protocol):
    """Scores per image (N,) of fused images (N, 3, H, W) against their exposures (N, K, 3, H, W) in
    [0, 1] or, when ``needs_reference``, against the reference (N, 3, H, W)."""

    name: str
    higher_is_better: bool
    needs_reference: bool

    def __call__(self, fused: Tensor, exposures: Tensor, reference: Tensor | None = None) -> Tensor: ...


class Loss(Protocol):
    """A training term: fused (N, 3, H, W) in [0, 1], exposures (N, K, 3, H, W), reference or None -> a scalar."""

    needs_reference: bool
    available: bool = True
    note: str

    def forward(self, fused: Tensor, exposures: Tensor, reference: Tensor | None) -> Tensor: ...


class Recipe(Protocol):
    """A way to train, built from the run's ``TrainConfig``: ``preflight(run)`` builds every part and runs one trial
    step before the run folder is touched; ``stages(run)`` yields the ``Stage``s to train in order, the engine
    training each one's model in place before it asks for the next (``run``: the engine's ``RunContext``)."""

    def preflight(self, run: Any) -> None: ...

    def stages(self, run: Any) -> Iterator[Any]: ...


class Pretrained(Protocol):
    """The path of a student checkpoint shipped as package data (``NAME.safetensors`` beside ``NAME.json``)."""

    def __fspath__(self) -> str: ...


@dataclass(frozen=True)
class Contract:
    """A kind's Protocol, how its factory is called, and what the built component must be."""

    protocol: type
    built_as: str
    module: bool = True
    #: member -> (other member, value): the member is required only while the other has that value.
    required_when: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def members(self) -> dict[str, Any]:
        """Every member and its default (``REQUIRED`` when it has none): attributes, then methods."""
        own = vars(self.protocol)
        found = {name: own.get(name, REQUIRED) for name in own.get("__annotations__", {})}
        found.update((name, REQUIRED) for name, value in own.items() if self._declares(value))
        return found

    def _declares(self, value: Any) -> bool:
        """Whether ``value`` is a method written in the Protocol (not one ``typing`` adds to every Protocol)."""
        return inspect.isfunction(value) and value.__qualname__.startswith(self.protocol.__qualname__ + ".")

    def required(self) -> list[str]:
        """Members every component of this kind has."""
        return [n for n, default in self.members().items() if default is REQUIRED and n not in self.required_when]

    def optional(self) -> dict[str, Any]:
        """Members a component may leave out, with the default the core then assumes."""
        return {n: default for n, default in self.members().items() if default is not REQUIRED}

    def on_factory(self) -> list[str]:
        """Optional members read off the factory before building, so declared there as well."""
        return [n for n, kind in vars(self.protocol).get("__annotations__", {}).items() if str(kind).startswith("ClassVar")]

    def problem(self, built: Any, factory: Any) -> str | None:
        """What ``built`` (made by ``factory``) lacks for this contract, in a few words; None when it conforms."""
        base = None
        if self.module:
            from torch import nn

            base = nn.Module
            if not isinstance(built, base):
                return f"it built a {type(built).__name__}, not a torch.nn.Module"
        members = self.members()
        for name in self.on_factory():
            default = members[name]
            if getattr(factory, name, default) != getattr(built, name, default):
                return (f"{name} is {getattr(built, name, default)!r} on what it builds but {getattr(factory, name, default)!r} "
                        f"on its factory; declare it on the factory (a class attribute), which is read before building")
        for name, default in members.items():
            condition = self.required_when.get(name)
            if condition is not None:
                other, value = condition
                if getattr(built, other, members[other]) != value:
                    continue
                when = f" (needed when {other} is {value!r})"
            elif default is not REQUIRED:
                continue
            else:
                when = ""
            if self._declares(vars(self.protocol).get(name)):
                if not _implements(built, name, base):
                    return f"it has no method {name!r}{when}"
            elif not hasattr(built, name):
                return f"it has no attribute {name!r}{when}"
        return None


def _implements(built: Any, name: str, base: type | None) -> bool:
    """Whether ``built`` has the method ``name``, other than the placeholder ``base`` leaves (nn.Module's forward)."""
    method = getattr(built, name, None)
    placeholder = getattr(base, name, None) if base is not None else None
    return callable(method) and (placeholder is None or getattr(method, "__func__", None) is not placeholder)


#: Every kind's contract, in the order ``fusionkit plugins`` lists kinds.
CONTRACTS: dict[str, Contract] = {
    "backbone": Contract(Backbone, "factory(in_channels, **options)"),
    "attention": Contract(Attention, "factory(channels, **options)"),
    "distill_loss": Contract(DistillLoss, "factory(**options)", module=False),
    "fusion_head": Contract(FusionHead, "factory(in_channels, skip_channels=0, out_channels=3, **options)"),
    "student": Contract(Student, "factory(**options)", required_when={"fuse": ("produces", "weights")}),
    "teacher": Contract(Teacher, "factory(**options)"),
    "method": Contract(Method, "factory(**options)"),
    "align": Contract(Align, "factory(**options)", module=False),
    "dataset": Contract(Dataset, "factory(root, split, **options)", module=False),
    "metric": Contract(Metric, "factory(**options)", module=False),
    "loss": Contract(Loss, "factory(**options)", required_when={"note": ("available", False)}),
    "recipe": Contract(Recipe, "factory(config)", module=False),
    "pretrained": Contract(Pretrained, "factory()", module=False),
}
