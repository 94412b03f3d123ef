"""What a recipe gets from the engine: the run's options, where and how it computes, its folder and checkpoints."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import create
from ..errors import FusionkitError, param
from ..inference.hardware import autocast_dtype
from ..runs.checkpoint import load_model, load_state, load_weights, paths, read_recipe
from ..runs.folders import checkpoint_file
from .config import TrainConfig
from .distributed import DistContext
from .stage import Stage


class RunContext:
    """One ``fusionkit train`` run as its recipe sees it: ``config``, the device, mixed precision and memory
    layout, the run folder and whether it resumes there, and ``data_root`` (set before the first stage)."""

    def __init__(self, config: TrainConfig, ctx: DistContext, run_dir: Path, resuming: bool) -> None:
        self.config, self.ctx, self.run_dir, self.resuming = config, ctx, run_dir, resuming
        self.device = ctx.device
        cuda = self.device.type == "cuda"
        self.channels_last = config.channels_last if config.channels_last is not None else cuda
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        self.data_root: Path | None = None

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0, the one that writes files and speaks."""
        return self.ctx.is_main

    def say(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def to_device(self, x: Tensor) -> Tensor:
        """``x`` on the run's device, in its memory layout."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` on the run's device, in its memory layout."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def autocast(self):
        """The run's mixed precision, for a forward pass."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def build(self, stage: Stage) -> nn.Module:
        """The stage's model, built from its component and options and placed."""
        return self.place(create(stage.kind, stage.component, **stage.options))

    def check_saved(self, stage: Stage, model: nn.Module) -> None:
        """On resume, the run's checkpoint of ``stage`` (if any) must load into ``model`` and, if the stage is
        unfinished, have its training state."""
        stem = self.run_dir / stage.name
        if not self.resuming or not paths(stem)[1].exists():
            return
        complete = read_recipe(stem).get("complete")
        load_weights(stem, model)
        if not complete:
            self.saved_state(stage.name)

    def saved_state(self, name: str) -> dict[str, Any]:
        """The training state an unfinished stage resumes from; a missing or unreadable one is a one-line error."""
        stem = self.run_dir / name
        state = load_state(stem)
        if state is None:
            raise FusionkitError(f"{param('resume')}: {stem}.state.pt is missing; cannot continue the {name} stage exactly")
        return state

    def load(self, name: str) -> nn.Module:
        """This run's own checkpoint of the stage ``name``, placed."""
        model, _ = load_model(self.run_dir / name, map_location="cpu")
        return self.place(model)

    def reuse(self, path: str, option: str, kind: str) -> nn.Module:
        """A ``kind`` another run trained in this run's colour mode, from ``path`` (a checkpoint file, or a run folder's
        ``kind``) given as the option ``option``; placed."""
        stem = checkpoint_file(path, param(option), role=kind)
        recipe = read_recipe(stem)
        if recipe.get("kind") != kind:
            raise FusionkitError(f"{param(option)} {stem}: holds a {recipe.get('kind')}, not a {kind}")
        if recipe.get("color", "rgb") != self.config.color:
            raise FusionkitError(f"{param(option)} {stem}: trained with {param('color')} {recipe.get('color')}, this run uses {self.config.color}")
        model, _ = load_model(stem, map_location="cpu")
        return self.place(model)
