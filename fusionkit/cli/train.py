"""``fusionkit train``: parse options into a TrainConfig and call :func:`fusionkit.train.train`."""

from __future__ import annotations

import sys

import click
import yaml

from ..training.config import TrainConfig, make_config, read_config_file
from ..errors import FusionkitError
from ..inference.hardware import PRECISIONS
from .group import in_flags

D = TrainConfig()


def key_values(values: tuple[str, ...] | list[str], option: str) -> dict:
    """``KEY=VALUE`` items as a dict, each value read as YAML (numbers, null, lists); dashes in keys become underscores."""
    parsed = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FusionkitError(f"{option} takes KEY=VALUE, got {item!r}")
        parsed[key.replace("-", "_")] = yaml.safe_load(raw)
    return parsed


def _loss_options(flat: dict) -> dict:
    """``{"mef_ssim.space": "rgb"}`` -> ``{"mef_ssim": {"space": "rgb"}}``."""
    nested: dict = {}
    for key, value in flat.items():
        name, sep, option = key.partition(".")
        if not sep or not option:
            raise FusionkitError(f"--loss-option takes NAME.KEY=VALUE, got {key!r}")
        nested.setdefault(name, {})[option] = value
    return nested


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML or TOML file giving any option below; the command line overrides it.")
@click.option("--training-recipe", help=f"Registered training recipe whose stages to run (see fusionkit plugins --kind recipe)  [default: {D.training_recipe}]")
@click.option("--student", help=f"Student preset  [default: {D.student}]")
@click.option("--teacher", help=f"Teacher preset  [default: {D.teacher}]")
@click.option("--stage", type=click.Choice(["teacher", "student", "both"]), help="Which stages to run  [default: both]")
@click.option("--teacher-checkpoint", help="Reuse a trained teacher (a teacher .safetensors file, or a run folder) instead of training one.")
@click.option("--data", help="Dataset root (exposure-errors or brackets layout); default: the embedded sample set.")
@click.option("--expert", help="Ground-truth expert for the test split (a-e)  [default: c]")
@click.option("--color", type=click.Choice(["rgb", "y"]), help="Fuse RGB, or luma only with DeepFuse chroma  [default: rgb]")
@click.option("--width", type=int, help=f"Channels of student and teacher  [default: {D.width}; the paper: 64]")
@click.option("--num-blocks", type=int, help="ResBlocks in student and teacher  [default: 6]")
@click.option("--attention", help="Attention block for both the channel and spatial slots (any registered attention).")
@click.option("--channel-attention", help="Channel attention on the fused features  [default: the preset's own]")
@click.option("--spatial-attention", help="Bottleneck spatial attention  [default: the preset's own]")
@click.option("--student-option", "student_options", multiple=True, metavar="KEY=VALUE", help="Any other student preset option (repeatable).")
@click.option("--distill", help=f"Distillation loss component  [default: {D.distill}]")
@click.option("--distill-option", "distill_options", multiple=True, metavar="KEY=VALUE", help="Option of the distillation loss, e.g. pairs=[[2,2],[4,4],[6,6]].")
@click.option("--loss", "losses", multiple=True, metavar="NAME=WEIGHT", help="Weight of a student loss term (repeatable; 0 drops it): distill or any registered loss  [default: " + " ".join(f"{k}={v:g}" for k, v in D.losses.items()) + "]")
@click.option("--loss-option", "loss_options", multiple=True, metavar="NAME.KEY=VALUE", help="Option of a loss component, e.g. mef_ssim.space=rgb.")
@click.option("--vgg-weights", type=click.Path(dir_okay=False), help="VGG19 ImageNet state dict (.safetensors or .pth) for the perceptual term (the same as --loss-option perceptual.vgg_weights=PATH); without one it is off.")
@click.option("--exposures", type=int, help=f"Exposures drawn per training scene  [default: {D.exposures}]")
@click.option("--teacher-steps", type=int, help=f"[default: {D.teacher_steps}]")
@click.option("--student-steps", type=int, help=f"[default: {D.student_steps}]")
@click.option("--batch-size", type=int, help=f"Pairs per step (per process)  [default: {D.batch_size}]")
@click.option("--crop", type=int, help=f"Training crop size in pixels  [default: {D.crop}]")
@click.option("--max-side", type=int, help="Scale training photos down to this long side before cropping (fuse's --work-size is 512)  [default: full size]")
@click.option("--lr", type=float, help=f"Adam learning rate, cosine-decayed  [default: {D.lr}]")
@click.option("--grad-clip", type=float, help=f"Gradient-norm clip, 0 for none  [default: {D.grad_clip}]")
@click.option("--seed", type=int, help=f"[default: {D.seed}]")
@click.option("--device", help="auto, cpu, cuda or cuda:N  [default: auto]")
@click.option("--precision", type=click.Choice(PRECISIONS), help="The networks' number format (autocast; fp16 with a gradient scaler, CUDA only)  [default: auto = bf16 on CUDA, fp32 on CPU]")
@click.option("--channels-last/--no-channels-last", default=None, help="[default: on for CUDA]")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the model  [default: off]")
@click.option("--workers", type=int, help=f"DataLoader worker processes  [default: {D.workers}]")
@click.option("--run-dir", help="Run folder  [default: runs/<student>-<time>]")
@click.option("--log-every", type=int, help=f"[default: {D.log_every}]")
@click.option("--checkpoint-every", type=int, help=f"[default: {D.checkpoint_every}]")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this folder exactly where it stopped.")
def train(config_file, student_options, distill_options, losses, loss_options, vgg_weights, compile_, resume, **options) -> None:
    """Train with a recipe: teacher, then student, by default (see docs/training.md)."""
    from ..training.engine import train as run_training
    from ..training.loop import TrainingInterrupted

    given = {k: v for k, v in options.items() if v is not None}
    if compile_ is not None:
        given["compile"] = compile_
    if student_options:
        given["student_options"] = key_values(student_options, "--student-option")
    if distill_options:
        given["distill_options"] = key_values(distill_options, "--distill-option")
    if losses:
        given["losses"] = key_values(losses, "--loss")
    if loss_options or vgg_weights:
        given["loss_options"] = _loss_options(key_values(loss_options, "--loss-option"))
    if vgg_weights:  # a loss option of the perceptual term, under the flag it has always had
        given["loss_options"].setdefault("perceptual", {})["vgg_weights"] = vgg_weights
    if resume:
        if given or config_file:
            raise FusionkitError("--resume continues a run with its saved config; give no other options")
        config = None
    else:
        config = make_config(read_config_file(config_file) if config_file else {}, given)
    try:
        run_dir = run_training(config, resume=resume)
    except TrainingInterrupted as exc:
        click.echo(f"fusionkit: {in_flags(exc)}", err=True)
        sys.exit(130)
    click.echo(f"run folder: {run_dir}")
