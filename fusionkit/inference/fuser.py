"""One ``Fuser``: a trained model or a training-free method, and how to fuse exposures with it.

``fusionkit fuse``, the bench and training validation all fuse through it, so "given a model or a
method, fuse these exposures" is decided once: students go through the network pipeline (colour
mode, padding, tiling, work size, precision), teachers reconstruct the reference, methods are called.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from .. import create
from ..colour import to_network_range
from ..errors import FusionkitError
from ..runs.checkpoint import load_model
from ..runs.folders import checkpoints_in, latest_run, shipped_student
from .hardware import Precision, pick_precision
from .pipeline import fuse_with_model, reconstruct_with_teacher, student_input
from .tiling import check_tiling

#: What a fuser holds: a trained student or teacher, or a registered training-free method.
ROLES = ("student", "teacher", "method")


@dataclass
class Fuser:
    """Fuses (N, K, 3, H, W) exposures in [0, 1] into (N, 3, H, W) RGB in [0, 1].

    ``work_size``: long side at which a weight-map student looks at the photos (None: full size);
    ``tile``/``overlap``/``tile_batch``: run a student in tiles; ``precision``: ``auto``, ``fp32`` or
    ``bf16`` for a student's network, or None to leave it to the caller (an enclosing autocast).
    """

    model: nn.Module
    role: str
    label: str
    color: str = "rgb"
    source: str = ""
    work_size: int | None = None
    tile: int | None = None
    overlap: int = 64
    tile_batch: int = 1
    precision: str | None = None
    _chosen: dict[tuple[str, int], Precision] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}; got {self.role!r}")
        if self.tile is not None:
            if self.role != "student":
                raise FusionkitError(f"tile applies to a student checkpoint; {self.label} fuses the whole image at once")
            check_tiling(self.tile, self.overlap, getattr(self.model, "multiple_of", 1))

    @classmethod
    def from_checkpoint(cls, path: str | Path, model_options: dict | None = None, **options) -> "Fuser":
        """The student or teacher in ``path`` (a .safetensors file or a run folder's student); ``model_options``
        replace some of its recipe's (e.g. ``refine_steps``)."""
        file = checkpoints_in(path)[0]
        model, recipe = load_model(file, map_location="cpu", options=model_options)
        return cls.trained(model.eval(), recipe, f" ({file.parent.name})", str(file), **options)

    @classmethod
    def trained(cls, model: nn.Module, recipe: dict, where: str = "", source: str = "", **options) -> "Fuser":
        """A trained model as its checkpoint's ``recipe`` says: a student fuses, a teacher reconstructs the reference."""
        role = recipe.get("kind", "student")
        label = recipe["name"] if role == "student" else f"{recipe['name']} teacher"
        return cls(model, role, label + where, recipe.get("color", "rgb"), source, **options)

    @classmethod
    def from_method(cls, name: str, **options) -> "Fuser":
        """A registered training-free method by name."""
        return cls(create("method", name).eval(), "method", name, source="training-free", **options)

    @classmethod
    def default(cls, model_options: dict | None = None, **options) -> "Fuser":
        """The latest trained run's student, else the shipped pretrained student (saying so on stderr)."""
        run = latest_run()
        if run is not None:
            return cls.from_checkpoint(run / "student.safetensors", model_options, **options)
        shipped = shipped_student()
        print(f"fusionkit: no trained run in runs/; fusing with the pretrained student {shipped.stem}", file=sys.stderr)
        return cls.from_checkpoint(shipped, model_options, **options)

    @property
    def oracle(self) -> bool:
        """A method that picks by the ground truth: shown where there is one, never ranked, never fuses new photos."""
        return self.role == "method" and bool(getattr(self.model, "needs_reference", False))

    @property
    def needs_reference(self) -> bool:
        """Teachers reconstruct the reference and oracles pick by it."""
        return self.oracle or self.role == "teacher"

    @property
    def num_inputs(self) -> int | None:
        """How many exposures the model fuses (None: any number)."""
        return getattr(self.model, "num_inputs", None) if self.role == "student" else None

    def to(self, device: torch.device) -> "Fuser":
        self.model = self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, exposures: Tensor, reference: Tensor | None = None) -> Tensor:
        if self.needs_reference and reference is None:
            raise FusionkitError(f"{self.label} looks at the reference image, and there is none")
        if self.role == "teacher":
            return reconstruct_with_teacher(self.model, reference, self.color)
        if self.role == "method":
            return self.model(exposures, reference=reference).clamp(0, 1)
        return fuse_with_model(
            self.model, exposures, self.color, tile=self.tile, overlap=self.overlap, tile_batch=self.tile_batch,
            work_size=None if self.tile is not None else self.work_size, precision=self._precision(exposures),
        )

    def _precision(self, exposures: Tensor) -> Precision | None:
        """The student's number format for this input, chosen once per device and channel count."""
        if self.precision is None:
            return None
        channels = exposures.shape[1] * (1 if self.color == "y" else 3)
        key = (str(exposures.device), channels)
        if key not in self._chosen:
            self._chosen[key] = pick_precision(self.model, exposures.device, channels, self.precision)
        return self._chosen[key]

    def speed_fn(self) -> Callable[[Tensor], Tensor]:
        """One inference call on a (B, K, 3, H, W) batch, without the pipeline around it: what speed is timed on."""
        if self.role == "student":
            return lambda x: self.model(student_input(x, self.color))
        if self.role == "teacher":
            return lambda x: self.model(to_network_range(x[:, 0, : self.model.in_channels]))
        return lambda x: self.model(x, reference=x[:, 0])
