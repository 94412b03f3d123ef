"""Training: loss goes down, teacher stays frozen, resume is exact, torchrun works, bad options fail cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import fusionkit
from fusionkit.training import distributed
from fusionkit.runs.checkpoint import load_model, read_recipe
from fusionkit.cli.main import cli
from fusionkit.training.config import make_config
from fusionkit.plugins import build_registry, get_registry, set_registry
from fusionkit.training.engine import Trainer, train
from fusionkit.training.loop import NonFiniteLoss, TrainingInterrupted
from tests.fake_exposure_data import make_fake_dataset

# refine_steps=0: these tests are about training; the per-image refinement the recipe adds when fusing
# (tests/test_refine.py) would only slow their validations.
TINY = dict(width=8, crop=32, batch_size=2, teacher_steps=12, student_steps=12, losses={"perceptual": 0}, log_every=1, device="cpu",
            checkpoint_every=5, student_options={"refine_steps": 0})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_fake_dataset(tmp_path_factory.mktemp("data") / "fake", train=6, val=2, test=2, size=40)


def tiny_config(dataset: Path, run_dir: Path, **overrides):
    return make_config({**TINY, "data": str(dataset), "run_dir": str(run_dir), **overrides})


def logged(run_dir: Path, stage: str) -> list[dict]:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["stage"] == stage]


def test_short_run_lowers_loss_and_writes_everything(dataset, tmp_path):
    run = train(tiny_config(dataset, tmp_path / "run", teacher_steps=48, student_steps=48, lr=3e-3))
    for stage in ("teacher", "student"):
        losses = [r["loss"] for r in logged(run, stage)]
        assert len(losses) == 48
        assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8, stage
    for name in ("config.json", "teacher.safetensors", "teacher.json", "teacher.state.pt", "student.safetensors",
                 "student.json", "student.state.pt", "log.jsonl", "log.csv", "loss_curve.png", "student_validation.png",
                 "teacher_validation.png"):
        assert (run / name).exists(), name
    recipe = read_recipe(run / "student")
    assert recipe["complete"] and recipe["step"] == 48 and recipe["name"] == "se_strip"
    assert recipe["plugins"] == {"fusionkit": fusionkit.__version__}
    assert recipe["losses"] == {"mef_ssim": 1.0, "tones": 0.3, "distill": 1.0}  # l1 off by default, perceptual set to 0
    assert recipe["val_psnr"] > 5
    assert {"loss_mef_ssim", "loss_distill", "samples_per_s"} <= set(logged(run, "student")[0])
    model, _ = load_model(run / "student")  # rebuilt from the recipe alone
    assert model.produces == "weights" and model(torch.zeros(1, 6, 32, 32)).shape == (1, 2, 32, 32)


def test_teacher_is_frozen_during_student_stage(dataset, tmp_path):
    config = tiny_config(dataset, tmp_path / "run", teacher_steps=4, student_steps=6)
    trainer = Trainer(config, distributed.setup("cpu"), tmp_path / "run", False, None)
    trainer.run()
    saved = load_file(str(tmp_path / "run" / "teacher.safetensors"))
    teacher = trainer.recipe.teacher
    live = teacher.state_dict()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(saved[k], live[k]) for k in saved)


@pytest.mark.parametrize("stop_stage, stop_step", [("teacher", 7), ("student", 7)])
def test_interrupt_and_resume_matches_uninterrupted_run(dataset, tmp_path, stop_stage, stop_step):
    reference = train(tiny_config(dataset, tmp_path / "straight"))

    def stop(stage, step, terms):
        return stage == stop_stage and step == stop_step

    with pytest.raises(TrainingInterrupted, match=f"resume {tmp_path / 'broken'}"):
        train(tiny_config(dataset, tmp_path / "broken"), on_step=stop)
    assert read_recipe(tmp_path / "broken" / stop_stage)["step"] == stop_step
    resumed = train(None, resume=tmp_path / "broken")
    for stage in ("teacher", "student"):
        a = load_file(str(reference / f"{stage}.safetensors"))
        b = load_file(str(resumed / f"{stage}.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{stage} {key}")


def test_non_finite_loss_stops_and_keeps_last_checkpoint(dataset, tmp_path):
    class NanDistill(torch.nn.Module):
        def forward(self, student, teacher):
            return student[0].sum() * float("nan")

    class Plugin:
        @fusionkit.hookimpl
        def register_components(register):
            register("distill_loss", "nan_for_test", NanDistill)

    previous = get_registry()
    set_registry(build_registry(extra_plugins=[Plugin]))
    try:
        with pytest.raises(NonFiniteLoss, match="student loss became non-finite at step 1"):
            train(tiny_config(dataset, tmp_path / "run", distill="nan_for_test", teacher_steps=3))
    finally:
        set_registry(previous)
    assert read_recipe(tmp_path / "run" / "teacher")["complete"]
    assert not (tmp_path / "run" / "student.safetensors").exists()


def test_teacher_checkpoint_is_reused(dataset, tmp_path):
    first = train(tiny_config(dataset, tmp_path / "teacher_only", stage="teacher", teacher_steps=3))
    assert not (first / "student.json").exists()
    second = train(tiny_config(dataset, tmp_path / "student_only", stage="student", teacher_checkpoint=str(first / "teacher.safetensors"), student_steps=3))
    assert read_recipe(second / "student")["complete"]
    assert not (second / "teacher.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--crop", "30"], "--crop must be a multiple of 4"),
        (["--student", "se_stirp"], "did you mean 'se_strip'"),
        (["--training-recipe", "distil"], "no recipe named 'distil' (did you mean 'distill'?)"),
        (["--attention", "nope"], "no attention named 'nope'"),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--data", "/no/such/folder"], "/no/such/folder"),
        (["--student-option", "widht=4"], "has no option 'widht'"),
        (["--vgg-weights", "/no/vgg.pth", "--loss", "perceptual=1"], "/no/vgg.pth"),
        (["--resume", "/no/run"], "/no/run"),
    ],
)
def test_bad_options_fail_with_one_line(dataset, tmp_path, args, message):
    data = [] if "--data" in args or "--resume" in args else ["--data", str(dataset)]
    steps = [] if "--resume" in args else ["--run-dir", str(tmp_path / "r"), "--teacher-steps", "1", "--student-steps", "1"]
    result = CliRunner().invoke(cli, ["train", *steps, *data, *args])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_config_file_then_command_line(dataset, tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(f"data: {dataset}\nwidth: 8\ncrop: 32\nbatch_size: 2\nteacher_steps: 2\nstudent_steps: 2\nlosses: {{perceptual: 0}}\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(config_path), "--student", "kd_baseline", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["student"] == "kd_baseline" and saved["width"] == 8 and saved["teacher_steps"] == 2
    (tmp_path / "bad.toml").write_text("widht = 3\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(tmp_path / "bad.toml")])
    assert result.exit_code != 0 and "unknown training option 'widht' (did you mean 'width'?)" in result.output


def test_loss_options_merge_term_by_term_over_the_config_file():
    """``--vgg-weights`` (a perceptual loss option) on the command line keeps the file's options of other terms."""
    config = make_config({"loss_options": {"mef_ssim": {"space": "rgb"}, "perceptual": {"vgg_weights": "a"}}},
                         {"loss_options": {"perceptual": {"vgg_weights": "b"}}})
    assert config.loss_options == {"mef_ssim": {"space": "rgb"}, "perceptual": {"vgg_weights": "b"}}


def test_checkpoints_record_the_kind_of_each_component_their_options_name(dataset, tmp_path):
    from fusionkit.runs.checkpoint import CheckpointError

    run = train(tiny_config(dataset, tmp_path / "run", stage="student", losses={"distill": 0, "perceptual": 0}, student_steps=1, attention="se"))
    recipe = read_recipe(run / "student")
    assert recipe["components"] == {"channel_attention": "attention", "spatial_attention": "attention"}
    recipe["options"]["channel_attention"] = "gone"
    (run / "student.json").write_text(json.dumps(recipe))
    with pytest.raises(CheckpointError, match="needs fusionkit .*: no attention named 'gone'"):
        load_model(run / "student")


def test_torchrun_two_processes_gloo(dataset, tmp_path):
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fusionkit", "train",
        "--data", str(dataset), "--run-dir", str(run_dir), "--width", "8", "--crop", "32", "--batch-size", "2",
        "--teacher-steps", "4", "--student-steps", "4", "--loss", "perceptual=0", "--device", "cpu", "--log-every", "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("teacher", "student"):
        recipe = read_recipe(run_dir / stage)
        assert recipe["world_size"] == 2 and recipe["replicas_in_sync"] is True and recipe["step"] == 4
    assert len([r for r in logged(run_dir, "student")]) == 4  # only rank 0 logs


def test_ctrl_c_writes_checkpoint_and_exits_130(dataset, tmp_path):
    import signal
    import time

    run_dir = tmp_path / "sigint"
    command = [sys.executable, "-m", "fusionkit", "train", "--data", str(dataset), "--run-dir", str(run_dir), "--width", "8",
               "--crop", "32", "--batch-size", "2", "--teacher-steps", "100000", "--loss", "perceptual=0", "--log-every", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run_dir / "log.jsonl").exists() and (run_dir / "log.jsonl").read_text().count("\n") >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert f"--resume {run_dir}" in stderr and "Traceback" not in stderr
    recipe = read_recipe(run_dir / "teacher")
    assert recipe["step"] >= 2 and not recipe["complete"]


def test_y_only_mode_trains_and_fuses_to_rgb(dataset, tmp_path):
    from fusionkit.inference.pipeline import fuse_with_model

    run = train(tiny_config(dataset, tmp_path / "y", color="y", teacher_steps=2, student_steps=2))
    model, recipe = load_model(run / "student")
    assert recipe["color"] == "y" and recipe["options"]["in_channels"] == 1
    exposures = torch.rand(1, 2, 3, 36, 44)
    fused = fuse_with_model(model.eval(), exposures, recipe["color"])
    assert fused.shape == (1, 3, 36, 44) and 0 <= float(fused.min()) and float(fused.max()) <= 1


def test_recipe_fuses_as_the_shipped_student_where_the_preset_takes_it():
    """The recipe's student options reach presets that accept them, are recorded, and yield to --student-option."""
    from fusionkit.plugins import get_registry
    from fusionkit.training.config import RECIPE_STUDENT_OPTIONS, TrainConfig

    assert RECIPE_STUDENT_OPTIONS == {"fine_levels": 6, "prior_shift": -0.25, "shadow_fill": True, "refine_steps": 10}
    assert TrainConfig().student_preset_options()["fine_levels"] == 6
    assert TrainConfig(student_options={"fine_levels": None}).student_preset_options()["fine_levels"] is None
    student = fusionkit.create("student", "se_strip", width=8, **{k: v for k, v in TrainConfig().student_preset_options().items() if k != "width"})
    assert student.blend.fine_levels == 6 and student.blend.shadow_fill is not None and student.blend.refine is not None
    assert TrainConfig(student_options={"head": "kd_upsample"}).student_preset_options() == {"head": "kd_upsample", "width": 32}  # the paper's
    registry = get_registry()
    registry.register("student", "plain_net", lambda width=8: torch.nn.Identity(), plugin="tests")
    try:
        assert "fine_levels" not in TrainConfig(student="plain_net").student_preset_options()
    finally:
        registry._components.pop(("student", "plain_net"))
    assert "fine_levels" not in TrainConfig(student="no_such_student").student_preset_options()


def test_a_config_from_before_vgg_weights_became_a_loss_option_still_reads(tmp_path):
    """Older run folders' config.json hold vgg_weights; it becomes the perceptual loss's option, so they resume."""
    from fusionkit.training.config import make_config

    old = make_config({"vgg_weights": "vgg19.safetensors", "loss_options": {"perceptual": {"layers": 3}}})
    assert old.loss_options["perceptual"] == {"vgg_weights": "vgg19.safetensors", "layers": 3}
    assert make_config({"vgg_weights": None}).loss_options == make_config({}).loss_options


def test_a_config_from_before_the_precision_vocabulary_still_reads():
    """Older run folders' config.json say amp (off, bf16, ...); it reads as precision (fp32, bf16, ...)."""
    from fusionkit.training.config import make_config

    assert make_config({"amp": "off"}).precision == "fp32"
    assert make_config({"amp": "bf16"}).precision == "bf16"


def test_a_saved_config_json_starts_a_new_run_of_its_own(tmp_path):
    """A run's config.json given to --config leaves its run folder behind: a new run never reuses it."""
    from fusionkit.training.config import read_config_file

    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({"run_dir": "runs/old", "width": 8}))
    assert read_config_file(saved) == {"width": 8}
    yaml_file = tmp_path / "options.yaml"
    yaml_file.write_text("run_dir: runs/chosen\n")
    assert read_config_file(yaml_file) == {"run_dir": "runs/chosen"}
