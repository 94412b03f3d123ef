"""Two-stage training: the ``ae`` teacher learns ground truth, then the student fuses pairs while
imitating the frozen teacher's features. CPU or CUDA, torchrun-ready, resumable, atomic checkpoints."""

from __future__ import annotations

import json
import math
import random
import signal
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import create
from . import distributed
from ..files import write_json
from ..runs.checkpoint import load_model, load_state, load_weights, make_recipe, paths, read_recipe, save_model
from ..runs.folders import check_fresh, checkpoint_file, has_checkpoint, own_run_folder
from .config import TrainConfig, make_config, read_config_file
from ..data.errors import DatasetLayoutError
from ..data.loader import build_loader
from ..errors import FusionkitError, FusionkitWarning, first_line
from ..evaluation.mef_ssim import MIN_SIDE as MEF_SSIM_MIN_SIDE, mef_ssim_rgb
from ..evaluation.metrics import psnr
from ..inference.pipeline import fuse_with_model, fused_image, network_target, reconstruct_with_teacher, student_input
from .runlog import StepLog, plot_loss_curves
from ..evaluation.pictures import save_grid

#: Called after every optimiser step with (stage, step, loss terms); returning True stops the run
#: as Ctrl-C would (a checkpoint is written first).
StepCallback = Callable[[str, int, dict[str, float]], Any]
#: The options that shape the student, and those that shape its distillation, as a one-line error names them.
STUDENT_OPTIONS = ("student", "color", "exposures", "width", "num_blocks", "attention", "channel_attention", "spatial_attention", "student_options")
DISTILL_OPTIONS = ("distill", "distill_options", "width", "num_blocks")
#: Command-line spelling of the options that map names to values.
MAPPING_FLAGS = {"student_options": "--student-option", "distill_options": "--distill-option"}


class TrainingInterrupted(FusionkitError):
    """The run was stopped (Ctrl-C or a callback) after writing a checkpoint it can resume from."""


class NonFiniteLoss(FusionkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Stage:
    """One training stage: which model, how many steps, how a batch becomes a loss."""

    name: str
    model: nn.Module
    recipe: dict[str, Any]
    steps: int
    loss_fn: Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, dict[str, Tensor]]]


def flags(config: TrainConfig, keys: tuple[str, ...]) -> str:
    """The options ``keys`` of ``config`` as the command line spells them (``--num-blocks 2, --distill-option pairs=[[9, 9]]``)."""
    spelt = []
    for key in keys:
        value = getattr(config, key)
        if key in MAPPING_FLAGS:
            spelt += [f"{MAPPING_FLAGS[key]} {name}={v if isinstance(v, str) else json.dumps(v)}" for name, v in value.items()]
        elif value is not None:
            spelt.append(f"--{key.replace('_', '-')} {value}")
    return ", ".join(spelt)


@contextmanager
def blamed(options: str) -> Iterator[None]:
    """Turn a failure of the trial step into a one-line error naming the options that led to it."""
    try:
        yield
    except FusionkitError:
        raise
    except Exception as exc:
        raise FusionkitError(f"{options}: {first_line(exc)} (found by a trial step before training)") from None


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.student}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "numpy": np.random.get_state()[1].tolist()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), 624, 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


class Trainer:
    """Runs the configured stages in a run folder; one instance per ``fusionkit train``."""

    def __init__(self, config: TrainConfig, ctx: distributed.DistContext, run_dir: Path, resuming: bool, on_step: StepCallback | None) -> None:
        self.config = config
        self.ctx = ctx
        self.run_dir = run_dir
        self.resuming = resuming
        self.on_step = on_step
        self.device = ctx.device
        self.cuda = self.device.type == "cuda"
        self.channels_last = config.channels_last if config.channels_last is not None else self.cuda
        self.amp_dtype = self._amp_dtype()
        self.stop = StopRequest()
        self.log: StepLog | None = None
        self.teacher: nn.Module | None = None
        self.loss_terms: dict[str, nn.Module] = {}

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.config.amp
        if amp == "auto":
            return torch.bfloat16 if self.cuda else None
        if amp == "fp16" and not self.cuda:
            raise FusionkitError("--amp fp16 needs CUDA; on CPU use --amp bf16 or off")
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]

    def say(self, message: str) -> None:
        if self.ctx.is_main:
            tqdm.write(message)

    # ----- the whole run -------------------------------------------------------------------
    def preflight(self) -> None:
        """Build every named component, check the checkpoints a resumed run continues from and run the student's
        loss once on a dummy batch, so a mistake fails in seconds, before the run folder is claimed or written."""
        teacher = self._preflight_teacher()
        if self.config.stage != "teacher":
            self.loss_terms = self._loss_terms()
            self._trial_step(self._preflight_student(), teacher)

    def _preflight_teacher(self) -> nn.Module:
        """The teacher the student will imitate: --teacher-checkpoint loaded, or a new one that a resumed run's
        own teacher checkpoint must fit."""
        config = self.config
        if config.teacher_checkpoint:
            return self._load_teacher()
        with blamed(flags(config, ("teacher", "color", "width", "num_blocks"))):
            teacher = self._place(create("teacher", config.teacher, **config.teacher_options()))
        self._check_saved("teacher", teacher)
        return teacher

    def _preflight_student(self) -> nn.Module:
        """A student as the student stage builds it, which a resumed run's student checkpoint must fit."""
        config = self.config
        with blamed(flags(config, STUDENT_OPTIONS)):
            student = self._place(create("student", config.student, **config.student_preset_options()))
        self._check_saved("student", student)
        return student

    def _check_saved(self, name: str, model: nn.Module) -> None:
        """On --resume, the run's checkpoint of stage ``name`` (if any) must load into ``model`` and, if the stage
        is unfinished, have its training state."""
        stem = self.run_dir / name
        if not self.resuming or not paths(stem)[1].exists():
            return
        complete = read_recipe(stem).get("complete")
        load_weights(stem, model)
        if not complete:
            self._saved_state(stem, name)

    @torch.no_grad()
    def _trial_step(self, student: nn.Module, teacher: nn.Module) -> None:
        """The student's loss once on a dummy batch of two crops: options that fit no model (distillation pairs
        beyond its blocks, a teacher of another width) fail here, naming the options, not at the first step."""
        config = self.config
        exposures = torch.rand(2, config.exposures, 3, config.crop, config.crop, device=self.device)
        reference = torch.rand(2, 3, config.crop, config.crop, device=self.device)
        with self._autocast():
            with blamed(flags(config, STUDENT_OPTIONS)):
                fused, features = self._student_forward(student, student, exposures)
            for name, loss in self.loss_terms.items():
                with blamed(self._loss_flags(name)):
                    loss(fused, exposures, reference)
            teacher_option = "teacher_checkpoint" if config.teacher_checkpoint else "teacher"
            with blamed(flags(config, (*DISTILL_OPTIONS, teacher_option))):
                distill = create("distill_loss", config.distill, **config.distill_options)
                if config.losses.get("distill", 0) > 0:
                    distill(features, self._teacher_features(teacher, reference))

    def _loss_flags(self, name: str) -> str:
        """``--loss NAME=WEIGHT`` and the term's ``--loss-option``s, as a one-line error names them."""
        options = [f"--loss-option {name}.{key}={value}" for key, value in self.config.loss_options.get(name, {}).items()]
        return ", ".join([f"--loss {name}={self.config.losses[name]:g}", *options])

    def run(self) -> Path:
        """Check all that can be checked, then train in a run folder this process owns (``own_run_folder``)."""
        self.preflight()
        self.data_root = self._data_root()
        self._training_loader()  # an empty or too small --data fails before the run folder exists
        with own_run_folder(self.run_dir, fresh=not self.resuming) if self.ctx.is_main else nullcontext():
            return self._train_in_folder()

    def _train_in_folder(self) -> Path:
        """The stages themselves, writing config, logs and checkpoints into the run folder."""
        config = self.config
        if self.ctx.is_main:
            write_json(self.run_dir / "config.json", config.as_dict())
            self.log = StepLog(self.run_dir)
        distributed.barrier(self.ctx)
        seed_everything(config.seed)
        with self.stop.installed():
            teacher = None
            if config.stage in ("teacher", "both") and not config.teacher_checkpoint:
                teacher = self._run_stage(self._teacher_stage())
            if config.stage in ("student", "both"):
                if teacher is not None or config.losses.get("distill", 0) > 0:  # without distillation, no teacher is needed
                    self.teacher = (teacher or self._load_teacher()).requires_grad_(False).eval()
                self._run_stage(self._student_stage(self.teacher))
        if self.ctx.is_main:
            self.log.close()
            self._save_picture(self.run_dir / "loss_curve.png", lambda path: plot_loss_curves(self.run_dir / "log.jsonl", path))
        distributed.barrier(self.ctx)
        return self.run_dir

    def _data_root(self) -> Path:
        if self.config.data:
            return Path(self.config.data)
        from ..synthetic.sample import ensure_sample  # imports scikit-image; only needed for the sample set

        if self.ctx.is_main:
            root = ensure_sample()
        distributed.barrier(self.ctx)
        return root if self.ctx.is_main else ensure_sample()

    # ----- stages --------------------------------------------------------------------------
    def _teacher_stage(self) -> Stage:
        options = self.config.teacher_options()
        model = create("teacher", self.config.teacher, **options)
        recipe = make_recipe("teacher", self.config.teacher, options, color=self.config.color, role="teacher")
        color = self.config.color

        def loss_fn(net: nn.Module, batch: dict[str, Tensor]):
            if batch.get("target") is None:
                raise FusionkitError(
                    f"{self.data_root}: the teacher learns reference images and this data has none; "
                    "train it on data with references, or pass --teacher-checkpoint"
                )
            target = self._to_device(network_target(batch["target"], color))
            rec = (net(target).float() - target).abs().mean()
            return rec, {"loss": rec, "loss_rec": rec}

        return Stage("teacher", model, recipe, self.config.teacher_steps, loss_fn)

    def _teacher_stem(self) -> Path:
        """The teacher to distil from: this run's own, or --teacher-checkpoint (a file or run folder) once checked."""
        if not self.config.teacher_checkpoint:
            return self.run_dir / "teacher"
        stem = checkpoint_file(self.config.teacher_checkpoint, "--teacher-checkpoint", role="teacher")
        recipe = read_recipe(stem)
        if recipe.get("kind") != "teacher":
            raise FusionkitError(f"--teacher-checkpoint {stem}: holds a {recipe.get('kind')}, not a teacher")
        if recipe.get("color", "rgb") != self.config.color:
            raise FusionkitError(f"--teacher-checkpoint {stem}: trained with --color {recipe.get('color')}, this run uses {self.config.color}")
        return stem

    def _load_teacher(self) -> nn.Module:
        teacher, _ = load_model(self._teacher_stem(), map_location="cpu")
        return self._place(teacher)

    def _loss_terms(self) -> dict[str, nn.Module]:
        """The weighted loss components other than distillation, built once; a perceptual term
        without VGG19 weights is dropped with a warning saying so."""
        config, terms = self.config, {}
        for name, weight in config.losses.items():
            if name == "distill" or weight == 0:
                continue
            options = dict(config.loss_options.get(name, {}))
            if name == "perceptual" and config.vgg_weights:
                options.setdefault("vgg_weights", config.vgg_weights)
            loss = create("loss", name, **options)
            if not getattr(loss, "available", True):
                if self.ctx.is_main:
                    warnings.warn(f"{loss.note} (--loss {name}={weight} ignored)", FusionkitWarning, stacklevel=2)
                continue
            terms[name] = loss.to(self.device)
        return terms

    def _student_stage(self, teacher: nn.Module | None) -> Stage:
        config = self.config
        options = config.student_preset_options()
        model = create("student", config.student, **options)
        distill = create("distill_loss", config.distill, **config.distill_options)
        terms = self.loss_terms
        weights = {name: config.losses[name] for name in terms}
        if config.losses.get("distill", 0) > 0:
            weights["distill"] = config.losses["distill"]
        self.say("student loss: " + " + ".join(f"{w:g} x {name}" for name, w in weights.items()))
        recipe = make_recipe(
            "student", config.student, options, color=config.color, role="student",
            distill={"name": config.distill, "options": config.distill_options}, losses=weights,
            notes={name: loss.note for name, loss in terms.items() if hasattr(loss, "note")},
        )

        def loss_fn(net: nn.Module, batch: dict[str, Tensor]):
            exposures = batch["inputs"].to(self.device, non_blocking=True)
            reference = batch.get("target")
            reference = reference.to(self.device, non_blocking=True) if reference is not None else None
            fused, features = self._student_forward(net, model, exposures)
            values, total = {}, fused.new_zeros(())
            for name, loss in terms.items():
                if loss.needs_reference and reference is None:
                    continue  # data without a reference trains the reference-free terms only
                values[f"loss_{name}"] = loss(fused, exposures, reference)
                total = total + weights[name] * values[f"loss_{name}"]
            if "distill" in weights and teacher is not None and reference is not None:
                values["loss_distill"] = distill(features, self._teacher_features(teacher, reference))
                total = total + weights["distill"] * values["loss_distill"]
            return total, {"loss": total, **values}

        return Stage("student", model, recipe, config.student_steps, loss_fn)

    def _student_forward(self, net: nn.Module, model: nn.Module, exposures: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The fused RGB image and block features of the student ``net`` (``model`` unwrapped) for exposures on the device."""
        color = self.config.color
        output, features = net(self._to_device(student_input(exposures, color)), return_features=True)
        return fused_image(model, output, exposures, color), features

    @torch.no_grad()
    def _teacher_features(self, teacher: nn.Module, reference: Tensor) -> list[Tensor]:
        """The frozen teacher's block features for the reference images: what the student's features imitate."""
        _, features = teacher(self._to_device(network_target(reference, self.config.color)), return_features=True)
        return features

    # ----- the engine ----------------------------------------------------------------------
    def _to_device(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _place(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _run_stage(self, stage: Stage) -> nn.Module:
        config, ctx = self.config, self.ctx
        stem = self.run_dir / stage.name
        model = self._place(stage.model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(stage.steps, config.min_lr_ratio))
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        step = 0
        if self.resuming and paths(stem)[1].exists():
            saved = read_recipe(stem)
            load_weights(stem, model)  # into the model already placed on its device
            if saved.get("complete"):
                self.say(f"{stage.name}: already trained ({saved['step']} steps), reusing {paths(stem)[0]}")
                return model
            state = self._saved_state(stem, stage.name)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            restore_rng(state["rng"])
            step = state["step"]
            self.say(f"{stage.name}: resuming at step {step}/{stage.steps}")
        if self.resuming and ctx.is_main:
            self.log.discard_after(stage.name, step)  # the steps after the checkpoint run again
        net: nn.Module = model
        if ctx.distributed:
            net = nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if self.cuda else None)
        if config.compile:
            net = torch.compile(net)
        model.train()

        def checkpoint(complete: bool) -> None:
            if ctx.is_main:
                recipe = {**stage.recipe, "step": step, "complete": complete, "config": config.as_dict(), "world_size": ctx.world_size}
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(), "step": step}
                save_model(stem, model, recipe, state)
            distributed.barrier(ctx)

        progress = tqdm(total=stage.steps, initial=step, desc=stage.name, disable=not ctx.is_main, dynamic_ncols=True, mininterval=1.0)
        samples, clock = 0, time.perf_counter()
        for batch in self._batches(step):
            if step >= stage.steps:
                break
            with self._autocast():
                loss, terms = stage.loss_fn(net, batch)
            if distributed.any_rank(ctx, not bool(torch.isfinite(loss))):
                progress.close()
                kept = f"The last good checkpoint is kept in {self.run_dir}" if has_checkpoint(self.run_dir) else "No checkpoint had been written"
                raise NonFiniteLoss(f"{stage.name} loss became non-finite at step {step + 1}; stopped. {kept} (try a lower --lr or --amp off)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            samples += batch["inputs"].shape[0] * ctx.world_size
            values = {k: float(v.detach()) for k, v in terms.items()}
            if ctx.is_main and (step % config.log_every == 0 or step == stage.steps):
                rate = samples / max(time.perf_counter() - clock, 1e-9)
                samples, clock = 0, time.perf_counter()
                self.log.write({"stage": stage.name, "step": step, **values, "lr": scheduler.get_last_lr()[0], "samples_per_s": rate})
                progress.set_postfix({k.removeprefix("loss_"): f"{v:.4f}" for k, v in values.items()} | {"samples/s": f"{rate:.1f}"})
            progress.update(1)
            if self.on_step is not None and self.on_step(stage.name, step, values):
                self.stop.requested = True
            if distributed.any_rank(ctx, self.stop.requested):
                checkpoint(complete=False)
                progress.close()
                raise TrainingInterrupted(
                    f"stopped at {stage.name} step {step}/{stage.steps}; checkpoint written. "
                    f"Continue with: fusionkit train --resume {self.run_dir}"
                )
            if step % config.checkpoint_every == 0 and step < stage.steps:
                checkpoint(complete=False)
        progress.close()
        stage.recipe["replicas_in_sync"] = distributed.replicas_in_sync(ctx, model)
        if not stage.recipe["replicas_in_sync"]:
            raise FusionkitError(f"{stage.name}: ranks ended with different weights; please report this")
        model.eval()
        scores, rows = self._evaluate(stage.name, model) if ctx.is_main else ({}, [])
        stage.recipe.update(scores)
        checkpoint(complete=True)  # before the picture: a full disk may cost the picture, never the checkpoint
        if rows:
            self._save_picture(self.run_dir / f"{stage.name}_validation.png", lambda path: save_grid(path, rows))
        self.say(f"{stage.name}: done, {step} steps -> {paths(stem)[0]}")
        return model

    def _saved_state(self, stem: Path, stage_name: str) -> dict[str, Any]:
        """The training state an unfinished stage resumes from; a missing or unreadable one is a one-line error."""
        state = load_state(stem)
        if state is None:
            raise FusionkitError(f"--resume: {stem}.state.pt is missing; cannot continue the {stage_name} stage exactly")
        return state

    def _save_picture(self, path: Path, draw: Callable[[Path], Any]) -> None:
        """Draw a picture of the run into ``path``; one that cannot be written (a full disk) is a warning, not a
        failure: the checkpoints it shows are written already."""
        try:
            draw(path)
        except (OSError, FusionkitError) as exc:
            reason = f"cannot write {path}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
            warnings.warn(f"{reason} (only this picture is missing; the checkpoints are written)", FusionkitWarning, stacklevel=2)

    def _batches(self, start_step: int) -> Iterator[dict[str, Tensor]]:
        """Endless batches; epoch e's pairs, crops and order follow (seed, e), so a resumed run sees the same batches."""
        loader = self._training_loader()
        epoch, skip = divmod(start_step, len(loader))
        while True:
            loader.set_epoch(epoch)
            for index, batch in enumerate(loader):
                if index >= skip:
                    yield batch
            skip, epoch = 0, epoch + 1

    def _training_loader(self):
        """The training split's loader; an empty split, or one smaller than a batch, is a one-line error."""
        config = self.config
        loader = build_loader(
            self.data_root, "training", pairs="random", exposures=config.exposures, crop=config.crop, flip=True, batch_size=config.batch_size,
            workers=config.workers, seed=config.seed, shuffle=True, distributed=self.ctx.distributed,
            drop_last=True, device=self.device, max_side=config.max_side,
        )
        if len(loader) == 0:
            raise FusionkitError(f"{self.data_root}: fewer training scenes than --batch-size {config.batch_size}")
        return loader

    # ----- evaluation and pictures ---------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self, stage_name: str, model: nn.Module) -> tuple[dict[str, Any], list[list[Tensor]]]:
        """Validation scores on full images (PSNR where there is a reference; the student's MEF-SSIM
        always) and the rows of the picture grid (inputs | output | reference)."""
        color = self.config.color
        pairs = "all" if stage_name == "student" else "low"  # the teacher sees ground truth only
        try:
            loader = build_loader(self.data_root, "validation", pairs=pairs, batch_size=1, seed=self.config.seed)
        except DatasetLayoutError as exc:
            self.say(f"{stage_name}: no validation ({exc})")
            return {"val_pairs": 0}, []
        scores: dict[str, list[float]] = {"psnr": [], "mef_ssim": []}
        rows, images = [], 0
        for batch in loader:
            exposures = batch["inputs"].to(self.device)
            target = batch["target"].to(self.device) if batch["target"] is not None else None
            if stage_name == "teacher" and target is None:
                break
            with self._autocast():
                if stage_name == "teacher":
                    output = reconstruct_with_teacher(model, target, color)
                else:
                    output = fuse_with_model(model, exposures, color)
            output = output.float().clamp(0, 1)
            scored = False
            if target is not None:
                scores["psnr"].append(float(psnr(output, target).mean()))
                scored = True
            if stage_name == "student" and min(output.shape[-2:]) >= MEF_SSIM_MIN_SIDE:
                scores["mef_ssim"].append(float(mef_ssim_rgb(output, exposures).mean()))
                scored = True
            images += scored
            if len(rows) < self.config.grid_pairs:
                reference = [target[0]] if target is not None else []
                rows.append([*exposures[0], output[0], *reference] if stage_name == "student" else [target[0], output[0]])
        result = {f"val_{name}": sum(v) / len(v) if v else None for name, v in scores.items()}
        result["val_pairs"] = images
        said = ", ".join(f"{k.removeprefix('val_')} {v:.4f}" for k, v in result.items() if k != "val_pairs" and v is not None)
        if said:
            self.say(f"{stage_name}: validation {said} over {result['val_pairs']} images")
        return result, rows


def train(config: TrainConfig | None, *, resume: str | Path | None = None, on_step: StepCallback | None = None) -> Path:
    """Train as configured (or continue the run in ``resume``); returns the run folder."""
    if resume is not None:
        run_dir = Path(resume)
        saved = run_dir / "config.json"
        if not saved.exists():
            raise FusionkitError(f"--resume {run_dir}: no config.json there; is it a fusionkit run folder?")
        config = make_config(read_config_file(saved))
    else:
        config = config or TrainConfig()
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        check_fresh(run_dir)  # early, on every rank; own_run_folder checks again under the lock
    config.run_dir = str(run_dir)
    ctx = distributed.setup(config.device)
    try:
        return Trainer(config, ctx, run_dir, resume is not None, on_step).run()
    finally:
        distributed.teardown(ctx)
