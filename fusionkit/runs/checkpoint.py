"""Checkpoints that are safe to load: weights in safetensors, the recipe in JSON, training state beside them.

A model checkpoint is ``NAME.safetensors`` (weights; the recipe is also in its metadata) plus
``NAME.json`` (the recipe: component kind/name/options, the kind of each component its options name,
colour mode, plugin versions, step).
Training state (optimizer, scheduler, RNG) is ``NAME.state.pt``, written by fusionkit itself and
read back with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..files import write_atomic, write_json
from ..errors import FusionkitError, UnknownComponentError, first_line
from ..plugins import get_registry

FORMAT = "fusionkit-checkpoint/1"


class CheckpointError(FusionkitError):
    """A checkpoint that is missing, unreadable, or needs a plugin that is not installed."""


def named_components(recipe: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of the recipe's model and of each component its options name, by the kinds the recipe records
    in ``components`` (option -> kind; a recipe written before kinds were recorded names none)."""
    options = recipe.get("options", {})
    parts = [(kind, options[option]) for option, kind in recipe.get("components", {}).items() if isinstance(options.get(option), str)]
    return [(recipe["kind"], recipe["name"]), *parts]


def make_recipe(kind: str, name: str, options: dict[str, Any], components: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON recipe that lets ``load_model`` rebuild a model without the user repeating flags; ``components``
    gives the kind of each option that names a component (``{"channel_attention": "attention"}``)."""
    recipe = {"format": FORMAT, "kind": kind, "name": name, "options": dict(options), "components": dict(components or {})}
    registry = get_registry()
    used = [registry.get(*key) for key in named_components(recipe) if key in registry]
    return {**recipe, "plugins": {component.plugin: component.version for component in used}, **extra}


def paths(stem: str | Path) -> tuple[Path, Path, Path]:
    """(weights, recipe, training-state) paths for a stem such as ``run/student`` or ``run/student.best.safetensors``.

    Only a final ``.safetensors`` is dropped; other dots belong to the name (``student.best``).
    """
    stem = Path(stem)
    name = stem.name.removesuffix(".safetensors")
    return tuple(stem.with_name(name + ending) for ending in (".safetensors", ".json", ".state.pt"))


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_model(stem: str | Path, model: nn.Module, recipe: dict[str, Any], state: dict[str, Any] | None = None) -> Path:
    """Write weights, recipe and (optionally) training state, each atomically; recipe last."""
    weights_path, recipe_path, state_path = paths(stem)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in unwrap(model).state_dict().items()}
    metadata = {"fusionkit_recipe": json.dumps(recipe, default=str)}
    write_atomic(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    if state is not None:
        write_atomic(state_path, lambda tmp: torch.save(state, tmp))
    write_json(recipe_path, recipe)
    return weights_path


def read_recipe(stem: str | Path) -> dict[str, Any]:
    """The checkpoint's recipe: ``NAME.json``, else the one inside the weights' metadata."""
    weights_path, recipe_path, _ = paths(stem)
    if recipe_path.exists():
        return _parse_recipe(recipe_path.read_text(), recipe_path)
    if not weights_path.exists():
        raise CheckpointError(f"checkpoint not found: {weights_path}")
    try:
        from safetensors import safe_open

        with safe_open(str(weights_path), "pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    if "fusionkit_recipe" not in meta:
        raise CheckpointError(f"{weights_path}: no fusionkit recipe beside it or inside it")
    return _parse_recipe(meta["fusionkit_recipe"], weights_path)


def _parse_recipe(text: str, source: Path) -> dict[str, Any]:
    """A recipe read from ``source``: a JSON object with a component kind and name and an options object."""
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(recipe, dict):
        raise CheckpointError(f"{source}: not a fusionkit recipe (a JSON object), found a {type(recipe).__name__}")
    if not all(isinstance(recipe.get(key), str) for key in ("kind", "name")) or not all(
        isinstance(recipe.get(key, {}), dict) for key in ("options", "components")
    ):
        raise CheckpointError(f"{source}: not a fusionkit recipe (it needs a kind and a name, and options and components as objects)")
    return recipe


def build_from_recipe(recipe: dict[str, Any], source: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the recipe's model; a component from a missing plugin gets a message naming the plugin."""
    from .. import component, create

    kind, name, options = recipe["kind"], recipe["name"], recipe.get("options", {})
    try:
        for part in named_components(recipe):
            component(*part)  # a part from a missing plugin is named before anything is built
        return create(kind, name, **options)
    except UnknownComponentError as exc:
        needed = ", ".join(f"{d} {v}" for d, v in recipe.get("plugins", {}).items()) or "unknown plugins"
        raise CheckpointError(f"{source} needs {needed}: {exc}") from None
    except Exception as exc:  # the recipe is data from a file: any option value may be wrong
        raise CheckpointError(f"{source}: its recipe's {kind} {name!r} with options {options} cannot be built ({first_line(exc)})") from None


def load_weights(stem: str | Path, model: nn.Module) -> nn.Module:
    """Load a checkpoint's safetensors weights into ``model`` (strict, one-line error if they do not fit)."""
    weights_path, _, _ = paths(stem)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, FileNotFoundError) as exc:
        raise CheckpointError(f"{weights_path}: cannot read weights ({exc})") from None
    _check_shapes(weights_path, tensors, unwrap(model).state_dict())
    missing, unexpected = unwrap(model).load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path}: weights do not fit the recipe's model "
            f"(missing {len(missing)} e.g. {missing[:2]}, unexpected {len(unexpected)} e.g. {unexpected[:2]})"
        )
    return model


def _check_shapes(weights_path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Weights whose shapes differ from the model's are a one-line error naming the first such tensor."""
    wrong = [key for key, value in tensors.items() if key in expected and value.shape != expected[key].shape]
    if wrong:
        key = wrong[0]
        raise CheckpointError(
            f"{weights_path}: weights do not fit the recipe's model ({len(wrong)} of another shape, e.g. {key} "
            f"is {tuple(tensors[key].shape)} in the file and {tuple(expected[key].shape)} in the model)"
        )


def load_model(
    stem: str | Path, map_location: str | torch.device = "cpu", options: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from its recipe and load its safetensors weights (strict); ``options`` replace some of the
    recipe's (those of how it fuses, such as ``refine_steps``, which leave the weights as they are)."""
    recipe = read_recipe(stem)
    recipe["options"] = {**recipe.get("options", {}), **(options or {})}
    model = build_from_recipe(recipe, paths(stem)[0])
    return load_weights(stem, model).to(map_location), recipe


def load_state(stem: str | Path) -> dict[str, Any] | None:
    """Training state written by ``save_model``, or None if there is none; a damaged file is a one-line error."""
    _, _, state_path = paths(stem)
    if not state_path.exists():
        return None
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception:  # torch's own messages run to many lines; a cut-short file is the usual cause
        raise CheckpointError(f"{state_path}: not a training state fusionkit can read (damaged, cut short, or not written by fusionkit)") from None
