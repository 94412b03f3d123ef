"""Training configuration: defaults < ``--config`` file (YAML or TOML) < command-line options."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..contracts import head_produces_weights
from ..errors import FusionkitError, param
from ..inference.hardware import PRECISIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


#: The student's loss terms and weights by default (the paper's: ``l1=2 distill=1 perceptual=1 mef_ssim=0 tones=0``).
DEFAULT_LOSSES = {"l1": 0.0, "distill": 1.0, "perceptual": 1.0, "mef_ssim": 1.0, "tones": 0.3}
#: Student options the recipe sets wherever the chosen preset takes them (``--student-option`` wins): those
#: the shipped student fuses with (docs/training.md): learned weights for the six finest pyramid levels,
#: Mertens' (tilted to the darker exposures) for the tones, the shadow fill, and ten steps of per-image
#: refinement when fusing.
RECIPE_STUDENT_OPTIONS: dict[str, Any] = {"fine_levels": 6, "prior_shift": -0.25, "shadow_fill": True, "refine_steps": 10}
#: Options merged key by key over the layers (file, command line) instead of replaced whole: the loss
#: weights over the defaults, and each loss term's options.
MERGED = ("losses", "loss_options")


@dataclass
class TrainConfig:
    """Every option of ``fusionkit train``. Defaults finish the sample-set demo on a 2-core CPU in ~10 min."""

    # The recipe component whose stages the run trains. The model, stage and distillation options below are
    # those of ``distill`` (fusionkit_kd's teacher -> student recipe); another recipe reads what it needs.
    training_recipe: str = "distill"
    student: str = "se_strip"
    teacher: str = "ae"
    stage: str = "both"  # teacher | student | both
    teacher_checkpoint: str | None = None
    data: str | None = None  # None: the embedded sample set
    expert: str = "c"
    color: str = "rgb"  # rgb | y
    # Model size and parts (None: the preset's own default).
    width: int | None = 32
    num_blocks: int | None = None
    attention: str | None = None  # sets channel and spatial attention together
    channel_attention: str | None = None
    spatial_attention: str | None = None
    student_options: dict[str, Any] = field(default_factory=dict)
    exposures: int = 2  # exposures drawn per training scene
    # Losses: the student's objective is the weighted sum of these terms; a weight of 0 drops one.
    # ``distill`` is the distill_loss component's term; every other name is a registered loss, built with
    # its own options from ``loss_options`` (e.g. ``{"perceptual": {"vgg_weights": PATH}}``).
    losses: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSSES))
    loss_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    distill: str = "l1_features"
    distill_options: dict[str, Any] = field(default_factory=dict)
    # Optimisation.
    teacher_steps: int = 400
    student_steps: int = 1500
    batch_size: int = 8
    crop: int = 96
    max_side: int | None = None  # training photos scaled down to this long side (None: as they are)
    lr: float = 1e-3
    min_lr_ratio: float = 0.05  # cosine decay from lr to lr * min_lr_ratio
    grad_clip: float = 1.0
    seed: int = 0
    # Engine.
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16, as fuse and bench
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False
    workers: int = 0
    # Output.
    run_dir: str | None = None
    log_every: int = 10
    checkpoint_every: int = 200
    grid_pairs: int = 4

    def student_preset_options(self) -> dict[str, Any]:
        """Options passed to ``create("student", ...)``: explicit parts override ``attention``."""
        recipe = RECIPE_STUDENT_OPTIONS if _blends_weights(self.student_options.get("head")) else {}
        options = {key: value for key, value in recipe.items() if _takes_option(self.student, key)}
        options.update(self.student_options)
        if self.color == "y":
            options["in_channels"] = 1
        for key in ("width", "num_blocks"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        for key in ("channel_attention", "spatial_attention"):
            value = getattr(self, key) or self.attention
            if value is not None:
                options[key] = value
        return options

    def teacher_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.color == "y":
            options["in_channels"] = 1
        for key in ("width", "num_blocks"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        return options

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<student>-<time>``: where a run goes without ``run_dir``."""
    return Path("runs") / f"{config.student}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _blends_weights(head: str | None) -> bool:
    """Whether a student with fusion head ``head`` (None: its preset's) blends the photos by weights, which the
    recipe's student options are about; a head that regresses the image takes none of them."""
    if head is None:
        return True
    try:
        return head_produces_weights(head)
    except FusionkitError:
        return True  # an unknown head: building the student says why


def _takes_option(student: str, option: str) -> bool:
    """Whether the student preset ``student`` accepts ``option`` (False for an unknown preset: building it says why)."""
    import inspect

    import fusionkit

    try:
        parameters = inspect.signature(fusionkit.component("student", student).factory).parameters
    except (FusionkitError, TypeError, ValueError):
        return False
    return option in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
CHOICES = {"stage": ("teacher", "student", "both"), "color": ("rgb", "y"), "precision": PRECISIONS}
POSITIVE = ("teacher_steps", "student_steps", "batch_size", "crop", "log_every", "checkpoint_every", "exposures")
#: Positive when given; None leaves the preset's own value (for max_side: photos at full size).
POSITIVE_OR_PRESET = ("width", "num_blocks", "max_side")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a YAML (.yaml/.yml) or TOML (.toml) file, or JSON (a saved run's config.json, whose
    ``run_dir`` is dropped: it names the run it came from, which a new run must not reuse)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FusionkitError(f"{param('config_file')}: cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise FusionkitError(f"{param('config_file')}: {path} must end in .yaml, .yml, .toml or .json")
    except FusionkitError:
        raise
    except Exception as exc:
        raise FusionkitError(f"{param('config_file')}: {path} is not valid: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FusionkitError(f"{param('config_file')}: {path} must hold a mapping of option names to values")
    if path.suffix == ".json":
        data.pop("run_dir", None)
    return {key.replace("-", "_"): value for key, value in data.items()}


def make_config(*layers: dict[str, Any]) -> TrainConfig:
    """Merge option layers (later wins) into a validated TrainConfig; unknown keys are errors."""
    merged: dict[str, Any] = {}
    for layer in map(_current, layers):
        for key, value in layer.items():
            if key not in FIELDS:
                import difflib

                close = difflib.get_close_matches(key, list(FIELDS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise FusionkitError(f"unknown training option {key!r}{hint}")
            merged[key] = _merged(key, merged, value)
    config = TrainConfig(**merged)
    validate(config)
    return config


def _current(layer: dict[str, Any]) -> dict[str, Any]:
    """Options as this version names them, so older run folders still resume: their config.json holds
    ``amp`` (now ``precision``, with ``off`` now ``fp32``) and ``vgg_weights`` (now the perceptual loss's option)."""
    layer = dict(layer)
    if "amp" in layer:
        amp = layer.pop("amp")
        layer.setdefault("precision", "fp32" if amp == "off" else amp)
    if "vgg_weights" not in layer:
        return layer
    weights = layer.pop("vgg_weights")
    if weights is not None:
        options = dict(layer.get("loss_options") or {})
        options["perceptual"] = {"vgg_weights": weights, **options.get("perceptual", {})}
        layer["loss_options"] = options
    return layer


def _merged(key: str, merged: dict[str, Any], value: Any) -> Any:
    """``value`` of option ``key`` over what earlier layers gave it: loss weights over the defaults, each loss
    term's options over its earlier ones, any other option replaced."""
    if key not in MERGED or not isinstance(value, dict):
        return value
    if key == "losses":
        return {**merged.get(key, DEFAULT_LOSSES), **value}
    terms = dict(merged.get(key, {}))
    for name, options in value.items():
        before = terms.get(name)
        terms[name] = {**before, **options} if isinstance(before, dict) and isinstance(options, dict) else options
    return terms


def _finite(value: Any) -> bool:
    """A real number, not NaN or infinite (``--lr nan`` would train nothing and say nothing)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(config: TrainConfig) -> None:
    """One-line errors for option values no run can use, before anything is built or written."""
    for key in ("losses", "loss_options", "student_options", "distill_options"):
        if not isinstance(getattr(config, key), dict):
            what = "loss names to weights" if key == "losses" else "names to values"
            raise FusionkitError(f"{key} must map {what}, got {getattr(config, key)!r}")
    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            raise FusionkitError(f"{param(key)} must be one of {', '.join(choices)}, got {getattr(config, key)!r}")
    given = tuple(key for key in POSITIVE_OR_PRESET if getattr(config, key) is not None)
    for key in POSITIVE + given:
        value = getattr(config, key)
        if not isinstance(value, int) or value < 1:
            raise FusionkitError(f"{param(key)} must be a positive integer, got {value!r}")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or not 0 <= config.seed < 2**63:
        raise FusionkitError(f"{param('seed')} must be a whole number from 0 to 2**63 - 1, got {config.seed!r}")
    unknown = sorted(set(config.loss_options) - set(config.losses))
    if unknown:
        option = next(iter(config.loss_options[unknown[0]]), "KEY")
        raise FusionkitError(
            f"{param('loss_options')} {unknown[0]}.{option}: no loss term {unknown[0]!r} in this run (its terms: {', '.join(config.losses)})"
        )
    if not isinstance(config.workers, int) or config.workers < 0:
        raise FusionkitError(f"{param('workers')} must be 0 (load in this process) or more, got {config.workers!r}")
    if config.crop % 4:
        raise FusionkitError(f"{param('crop')} must be a multiple of 4 (the networks downsample by 4), got {config.crop}")
    if not _finite(config.lr) or config.lr <= 0:
        raise FusionkitError(f"{param('lr')} must be a positive number, got {config.lr!r}")
    for key in ("grad_clip", "min_lr_ratio"):
        if not _finite(getattr(config, key)) or getattr(config, key) < 0:
            raise FusionkitError(f"{param(key)} must be a number >= 0, got {getattr(config, key)!r}")
    for name, weight in config.losses.items():
        if not _finite(weight) or weight < 0:
            raise FusionkitError(f"{param('losses')} {name}={weight!r}: a weight must be a number >= 0")
    if config.teacher_checkpoint and config.stage == "teacher":
        raise FusionkitError(f"{param('teacher_checkpoint')} reuses a trained teacher; it makes no sense with {param('stage')} teacher")
