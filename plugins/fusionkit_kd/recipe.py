"""The ``distill`` training recipe (the paper's): the teacher learns to reconstruct references, then the student
learns to fuse exposures while imitating the frozen teacher's features."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn

import fusionkit
from fusionkit.api import (
    FusionkitError, LossTerms, RunContext, Stage, blamed, fused_image, named, network_target, param, student_input, trial_batch, unwrap,
)

#: The options that shape the student, and those that shape its distillation, as a one-line error names them.
STUDENT_OPTIONS = ("student", "color", "exposures", "width", "num_blocks", "attention", "channel_attention", "spatial_attention", "student_options")
DISTILL_OPTIONS = ("distill", "distill_options", "width", "num_blocks")
#: The student presets' options that name a component, and its kind, as the student's checkpoint records them.
PART_KINDS = {"backbone": "backbone", "head": "fusion_head", "channel_attention": "attention", "spatial_attention": "attention"}


class Distillation:
    """Teacher, then student distilling from it (``stage``: teacher, student or both); the student's loss is the
    run's loss terms plus ``distill`` times the distillation loss between its features and the teacher's."""

    def __init__(self, config) -> None:
        self.config = config
        self.terms: LossTerms | None = None  # the student's loss terms, built once by preflight
        self.teacher: nn.Module | None = None  # the frozen teacher the student imitates

    def preflight(self, run: RunContext) -> None:
        """Build the teacher and the student (a resumed run's checkpoints must fit them) and take one student step."""
        teacher = self._preflight_teacher(run)
        if self.config.stage != "teacher":
            self.terms = LossTerms(run, own=("distill",))
            self._trial_step(run, self._preflight_student(run), teacher)

    def stages(self, run: RunContext) -> Iterator[Stage]:
        """The teacher stage, then the student's, which imitates the teacher just trained (or reused)."""
        config = self.config
        teacher = None
        if config.stage in ("teacher", "both") and not config.teacher_checkpoint:
            stage = self._teacher_stage(run)
            yield stage
            teacher = stage.model
        if config.stage in ("student", "both"):
            if teacher is not None or config.losses.get("distill", 0) > 0:  # without distillation, no teacher is needed
                self.teacher = (teacher or self._saved_teacher(run)).requires_grad_(False).eval()
            stage = self._student_stage(run, fusionkit.create("distill_loss", config.distill, **config.distill_options), self.teacher)
            run.say("student loss: " + " + ".join(f"{w:g} x {name}" for name, w in stage.record["losses"].items()))
            yield stage

    # ----- the stages ----------------------------------------------------------------------
    def _teacher_stage(self, run: RunContext) -> Stage:
        """The teacher reconstructs references (L1); validated by PSNR on the ground truth alone."""
        config, color = self.config, self.config.color

        def loss(net: nn.Module, batch: dict[str, Tensor]):
            if batch.get("target") is None:
                raise FusionkitError(
                    f"{run.data_root}: the teacher learns reference images and this data has none; "
                    f"train it on data with references, or pass {param('teacher_checkpoint')}"
                )
            target = run.to_device(network_target(batch["target"], color))
            rec = (net(target).float() - target).abs().mean()
            return rec, {"loss": rec, "loss_rec": rec}

        return Stage("teacher", "teacher", config.teacher, config.teacher_options(), config.teacher_steps, loss,
                     metrics=("psnr",), pairs="low", record={"color": color, "role": "teacher"})

    def _student_stage(self, run: RunContext, distill, teacher: nn.Module | None) -> Stage:
        """The student fuses pairs; validated by PSNR where there is a reference and MEF-SSIM always."""
        config, terms = self.config, self.terms
        options = config.student_preset_options()
        weights = dict(terms.weights)
        if config.losses.get("distill", 0) > 0:
            weights["distill"] = config.losses["distill"]

        def loss(net: nn.Module, batch: dict[str, Tensor]):
            exposures = batch["inputs"].to(run.device, non_blocking=True)
            reference = batch.get("target")
            reference = reference.to(run.device, non_blocking=True) if reference is not None else None
            fused, features = self._forward(run, net, exposures)
            total, values = terms(fused, exposures, reference)
            if "distill" in weights and teacher is not None and reference is not None:
                values["loss_distill"] = distill(features, self._teacher_features(run, teacher, reference))
                total = total + weights["distill"] * values["loss_distill"]
            return total, {"loss": total, **values}

        record = {"color": config.color, "role": "student", "distill": {"name": config.distill, "options": config.distill_options},
                  "losses": weights, "notes": terms.notes}
        components = {option: kind for option, kind in PART_KINDS.items() if option in options}
        return Stage("student", "student", config.student, options, config.student_steps, loss,
                     metrics=("psnr", "mef_ssim"), components=components, record=record)

    def _forward(self, run: RunContext, net: nn.Module, exposures: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The fused RGB image and block features of the student ``net`` for exposures on the device."""
        output, features = net(run.to_device(student_input(exposures, self.config.color)), return_features=True)
        return fused_image(unwrap(net), output, exposures, self.config.color), features

    @torch.no_grad()
    def _teacher_features(self, run: RunContext, teacher: nn.Module, reference: Tensor) -> list[Tensor]:
        """The frozen teacher's block features for the reference images: what the student's features imitate."""
        _, features = teacher(run.to_device(network_target(reference, self.config.color)), return_features=True)
        return features

    def _saved_teacher(self, run: RunContext) -> nn.Module:
        """The teacher to distil from: ``teacher_checkpoint`` (a file or run folder) once checked, or this run's own."""
        if self.config.teacher_checkpoint:
            return run.reuse(self.config.teacher_checkpoint, "teacher_checkpoint", "teacher")
        return run.load("teacher")

    # ----- preflight -----------------------------------------------------------------------
    def _preflight_teacher(self, run: RunContext) -> nn.Module:
        """The teacher the student will imitate: ``teacher_checkpoint`` loaded, or a new one that a resumed run's
        own teacher checkpoint must fit."""
        config = self.config
        if config.teacher_checkpoint:
            return self._saved_teacher(run)
        stage = self._teacher_stage(run)
        with blamed(named(config, ("teacher", "color", "width", "num_blocks"))):
            teacher = run.build(stage)
        run.check_saved(stage, teacher)
        return teacher

    def _preflight_student(self, run: RunContext) -> nn.Module:
        """A student as the student stage builds it, which a resumed run's student checkpoint must fit."""
        stage = self._student_stage(run, None, None)
        with blamed(named(self.config, STUDENT_OPTIONS)):
            student = run.build(stage)
        run.check_saved(stage, student)
        return student

    @torch.no_grad()
    def _trial_step(self, run: RunContext, student: nn.Module, teacher: nn.Module) -> None:
        """The student's loss once on a dummy batch: options that fit no model (distillation pairs beyond its
        blocks, a teacher of another width) fail here, naming the options, not at the first step."""
        config = self.config
        batch = trial_batch(config, run.device)
        exposures, reference = batch["inputs"], batch["target"]
        with run.autocast():
            with blamed(named(config, STUDENT_OPTIONS)):
                fused, features = self._forward(run, student, exposures)
            self.terms.trial(fused, exposures, reference)
            teacher_option = "teacher_checkpoint" if config.teacher_checkpoint else "teacher"
            with blamed(named(config, (*DISTILL_OPTIONS, teacher_option))):
                distill = fusionkit.create("distill_loss", config.distill, **config.distill_options)
                if config.losses.get("distill", 0) > 0:
                    distill(features, self._teacher_features(run, teacher, reference))
