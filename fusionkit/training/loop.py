"""The training loop of one stage: Adam on a cosine schedule, mixed precision, DDP, resume, checkpoints, validation."""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import FusionkitError, param
from ..evaluation.pictures import save_grid
from ..runs.checkpoint import load_weights, make_recipe, paths, read_recipe, save_model
from ..runs.folders import has_checkpoint
from . import distributed
from .context import RunContext
from .rng import restore_rng, rng_state
from .runlog import StepLog, save_picture
from .stage import Stage
from .validation import validate

#: Called after every optimiser step with (stage, step, loss terms); returning True stops the run
#: as Ctrl-C would (a checkpoint is written first).
StepCallback = Callable[[str, int, dict[str, float]], Any]


class TrainingInterrupted(FusionkitError):
    """The run was stopped (Ctrl-C or a callback) after writing a checkpoint it can resume from."""


class NonFiniteLoss(FusionkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def cosine_schedule(steps: int, min_ratio: float) -> Callable[[int], float]:
    """Learning-rate factor: cosine decay from 1 to ``min_ratio`` over ``steps``."""
    return lambda step: min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


class StopRequest:
    """Turns the first Ctrl-C into a request honoured at the end of the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        try:
            previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: no signal handling, callbacks still work
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class StageLoop:
    """Trains ``stage.model`` (built and placed) in the run folder, from its checkpoint when the run resumes."""

    def __init__(self, run: RunContext, stage: Stage, log: StepLog | None, on_step: StepCallback | None, stop: StopRequest) -> None:
        self.run, self.stage, self.log, self.on_step, self.stop = run, stage, log, on_step, stop
        self.stem = run.run_dir / stage.name
        self.model = stage.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=run.config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cosine_schedule(stage.steps, run.config.min_lr_ratio))
        self.scaler = torch.amp.GradScaler("cuda", enabled=run.amp_dtype is torch.float16)
        self.recipe = make_recipe(stage.kind, stage.component, stage.options, stage.components, **stage.record)
        self.step = 0

    def train(self, batches: Callable[[int], Iterator[dict[str, Tensor]]]) -> None:
        """Resume or start, take the remaining steps on ``batches(first step)``, then validate and checkpoint."""
        run, stage = self.run, self.stage
        if self._resume():
            return
        net: nn.Module = self.model
        if run.ctx.distributed:
            net = nn.parallel.DistributedDataParallel(self.model, device_ids=[run.device.index] if run.device.type == "cuda" else None)
        if run.config.compile:
            net = torch.compile(net)
        self.model.train()
        progress = tqdm(total=stage.steps, initial=self.step, desc=stage.name, disable=not run.is_main, dynamic_ncols=True, mininterval=1.0)
        samples, clock = 0, time.perf_counter()
        for batch in batches(self.step):
            if self.step >= stage.steps:
                break
            values = self._step(net, batch, progress)
            samples += batch["inputs"].shape[0] * run.ctx.world_size
            if run.is_main and (self.step % run.config.log_every == 0 or self.step == stage.steps):
                rate = samples / max(time.perf_counter() - clock, 1e-9)
                samples, clock = 0, time.perf_counter()
                self.log.write({"stage": stage.name, "step": self.step, **values, "lr": self.scheduler.get_last_lr()[0], "samples_per_s": rate})
                progress.set_postfix({k.removeprefix("loss_"): f"{v:.4f}" for k, v in values.items()} | {"samples/s": f"{rate:.1f}"})
            progress.update(1)
            self._stop_if_asked(values, progress)
            if self.step % run.config.checkpoint_every == 0 and self.step < stage.steps:
                self._checkpoint(complete=False)
        progress.close()
        self._finish()

    def _resume(self) -> bool:
        """On resume, load the stage's checkpoint and training state; True when the stage was already complete."""
        run, stage = self.run, self.stage
        if run.resuming and paths(self.stem)[1].exists():
            saved = read_recipe(self.stem)
            load_weights(self.stem, self.model)  # into the model already placed on its device
            if saved.get("complete"):
                run.say(f"{stage.name}: already trained ({saved['step']} steps), reusing {paths(self.stem)[0]}")
                return True
            state = run.saved_state(stage.name)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            restore_rng(state["rng"])
            self.step = state["step"]
            run.say(f"{stage.name}: resuming at step {self.step}/{stage.steps}")
        if run.resuming and run.is_main:
            self.log.discard_after(stage.name, self.step)  # the steps after the checkpoint run again
        return False

    def _step(self, net: nn.Module, batch: dict[str, Tensor], progress: tqdm) -> dict[str, float]:
        """One optimiser step on ``batch``; a non-finite loss on any rank stops the run."""
        run, stage = self.run, self.stage
        with run.autocast():
            loss, terms = stage.loss(net, batch)
        if distributed.any_rank(run.ctx, not bool(torch.isfinite(loss))):
            progress.close()
            kept = f"The last good checkpoint is kept in {run.run_dir}" if has_checkpoint(run.run_dir) else "No checkpoint had been written"
            raise NonFiniteLoss(
                f"{stage.name} loss became non-finite at step {self.step + 1}; stopped. {kept} (try a lower {param('lr')} or {param('precision')} fp32)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if run.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), run.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def _stop_if_asked(self, values: dict[str, float], progress: tqdm) -> None:
        """Ctrl-C or the step callback on any rank: checkpoint, then stop with a note on how to continue."""
        if self.on_step is not None and self.on_step(self.stage.name, self.step, values):
            self.stop.requested = True
        if distributed.any_rank(self.run.ctx, self.stop.requested):
            self._checkpoint(complete=False)
            progress.close()
            raise TrainingInterrupted(
                f"stopped at {self.stage.name} step {self.step}/{self.stage.steps}; checkpoint written. "
                f"Continue with {param('resume')} {self.run.run_dir}"
            )

    def _checkpoint(self, complete: bool) -> None:
        """Weights, recipe and training state of the current step, written by rank 0."""
        run = self.run
        if run.is_main:
            recipe = {**self.recipe, "step": self.step, "complete": complete, "config": run.config.as_dict(), "world_size": run.ctx.world_size}
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                     "rng": rng_state(), "step": self.step}
            save_model(self.stem, self.model, recipe, state)
        distributed.barrier(run.ctx)

    def _finish(self) -> None:
        """Check the ranks agree, validate, write the complete checkpoint, then the validation picture."""
        run, stage = self.run, self.stage
        self.recipe["replicas_in_sync"] = distributed.replicas_in_sync(run.ctx, self.model)
        if not self.recipe["replicas_in_sync"]:
            raise FusionkitError(f"{stage.name}: ranks ended with different weights; please report this")
        self.model.eval()
        scores, rows = validate(run, stage, self.model, self.recipe) if run.is_main else ({}, [])
        self.recipe.update(scores)
        self._checkpoint(complete=True)  # before the picture: a full disk may cost the picture, never the checkpoint
        if rows:
            save_picture(run.run_dir / f"{stage.name}_validation.png", lambda path: save_grid(path, rows))
        run.say(f"{stage.name}: done, {self.step} steps -> {paths(self.stem)[0]}")
