"""Training keeps what it wrote and refuses, in one line and before any work, what would fail later (issue #22).

A full disk costs a picture, never a checkpoint; options that only a training step would reject are
refused before the run folder is claimed; a failed run removes only its own files; damaged recipes,
training states and weights are one-line errors naming the file; so are VGG19 weights of the wrong kind.
"""

from __future__ import annotations

import errno
import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from fusionkit.errors import FusionkitError, FusionkitWarning
from fusionkit.runs.checkpoint import read_recipe
from fusionkit.training.config import make_config
from fusionkit.training.engine import Trainer, train
from fusionkit.training.perceptual import load_vgg19_features
from tests.test_cli_reliability import (  # noqa: F401 (fixtures are found by name)
    BENCH, FUSE, TEACHER_ONLY, TINY, TINY_ARGS, TRAIN, assert_one_line_error, copy_run, data, invoke, run, snapshot, spies, work,
)

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


def no_space(*args, **kwargs):
    raise NO_SPACE


# ----- 1. a full disk at the end of a stage costs the picture, not the checkpoint --------------
@pytest.mark.parametrize("writer", ["fusionkit.training.loop.save_grid", "imageio.v3.imwrite"], ids=["grid", "encoder"])
def test_a_picture_that_cannot_be_written_is_a_warning_and_the_checkpoints_are_kept(data, tmp_path, monkeypatch, writer):
    monkeypatch.setattr(writer, no_space)
    with pytest.warns(FusionkitWarning, match="No space left on device") as caught:
        run_dir = train(make_config({**TINY, "data": str(data), "run_dir": str(tmp_path / "full")}))
    for role in ("teacher", "student"):
        assert read_recipe(run_dir / role)["complete"]
        assert not (run_dir / f"{role}_validation.png").exists()
    said = [str(w.message) for w in caught if "No space" in str(w.message)]
    assert len(said) == 2 and all("\n" not in line and "validation.png" in line for line in said), said


# ----- 2. options that only a training step rejects are refused before the run folder ----------
@pytest.fixture
def steps(monkeypatch) -> list[str]:
    """The stages that started training: a refused run starts none."""
    started, run_stage = [], Trainer._run_stage
    monkeypatch.setattr(Trainer, "_run_stage", lambda self, stage: started.append(stage.name) or run_stage(self, stage))
    return started


STUDENT_STEP_FAILURES = [
    ("num-blocks-below-the-pairs", ["--num-blocks", "2"], "--num-blocks 2"),
    ("pairs-beyond-the-blocks", ["--distill-option", "pairs=[[9,9]]"], "--distill-option pairs=[[9, 9]]"),
    ("pairs-not-numbers", ["--distill-option", "pairs=abc"], "--distill-option pairs=abc"),
    ("teacher-of-another-width", ["--stage", "student", "--teacher-checkpoint", "runs/tiny", "--width", "8"], "--teacher-checkpoint runs/tiny"),
    ("loss-weight-yaml-nan", ["--loss", "l1=.nan"], "--loss l1=nan"),
    ("loss-weight-nan", ["--loss", "l1=nan"], "--loss l1='nan'"),
]


@pytest.mark.parametrize("args, text", [case[1:] for case in STUDENT_STEP_FAILURES], ids=[case[0] for case in STUDENT_STEP_FAILURES])
def test_options_a_student_step_would_reject_are_refused_before_training(work, data, steps, args, text):
    before = snapshot(work)
    assert_one_line_error(invoke(*TRAIN, "--data", data, *args), text)
    assert steps == [] and snapshot(work) == before  # no stage ran, no run folder "r"


def test_a_resumed_run_is_checked_before_its_folder_is_touched(run, work, steps):
    folder = resumable(run, work / "dead_end")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "distill_options": {"pairs": [[9, 9]]}}))
    before = snapshot(work)
    assert_one_line_error(invoke("train", "--resume", folder), "--distill-option pairs=[[9, 9]]")
    assert steps == [] and snapshot(work) == before


# ----- 3. a failed run removes only what it wrote ------------------------------------------------
class FailAfterAnotherProcessWrites:
    """At the first step, another process writes into the run folder; then the run fails (no checkpoint yet)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def __call__(self, stage, step, terms):
        (self.run_dir / "notes.txt").write_text("another process\n")
        (self.run_dir / "monitor").mkdir()
        raise FusionkitError("simulated failure")


@pytest.mark.parametrize("exists", [False, True], ids=["folder-made-by-the-run", "folder-made-by-the-user"])
def test_a_failed_run_removes_only_the_files_it_wrote(data, tmp_path, exists):
    run_dir = tmp_path / "runs" / "shared"
    if exists:
        run_dir.mkdir(parents=True)
        (run_dir / "mine.txt").write_text("the user's\n")
    config = make_config({**TINY, "stage": "teacher", "data": str(data), "run_dir": str(run_dir)})
    with pytest.raises(FusionkitError, match="simulated failure"):
        train(config, on_step=FailAfterAnotherProcessWrites(run_dir))
    kept = {"notes.txt", "monitor"} | ({"mine.txt"} if exists else set())
    assert {p.name for p in run_dir.iterdir()} == kept
    assert train(config) == run_dir and read_recipe(run_dir / "teacher")["complete"]


# ----- 4. damaged recipes, training states and weights are one line naming the file ------------
def resumable(run: Path, to: Path) -> Path:
    """A copy of ``run`` whose student stage stopped at its last checkpoint: ``train --resume`` continues it."""
    copy_run(run, to)
    shutil.copy(run / "student.state.pt", to)
    recipe = read_recipe(to / "student")
    (to / "student.json").write_text(json.dumps({**recipe, "complete": False}))
    return to


def string_width(recipe):
    return {**recipe, "options": {**recipe["options"], "width": "4"}}


BAD_RECIPES = {"a-list": lambda recipe: [recipe], "empty": lambda recipe: {}, "string-width": string_width}


@pytest.fixture(params=list(BAD_RECIPES))
def bad_recipe(request, work) -> Path:
    """runs/bad: the trained run with its student's and teacher's recipes damaged one way."""
    folder = copy_run(work / "runs" / "tiny", work / "runs" / "bad")
    for role in ("student", "teacher"):
        recipe = json.loads((folder / f"{role}.json").read_text())
        (folder / f"{role}.json").write_text(json.dumps(BAD_RECIPES[request.param](recipe)))
    return folder


@pytest.mark.parametrize("command", ["fuse", "bench", "train"])
def test_a_damaged_recipe_is_one_line_naming_the_checkpoint(work, data, spies, steps, bad_recipe, command):
    args = {
        "fuse": [*FUSE, "-o", "f.png", "--checkpoint", "runs/bad"],
        "bench": ["bench", "--data", data, "--checkpoint", "runs/bad", "--methods", "", "--no-speed"],
        "train": [*TRAIN, "--data", data, "--stage", "student", "--teacher-checkpoint", "runs/bad"],
    }[command]
    before = snapshot(work)
    assert_one_line_error(invoke(*args), str(Path("runs", "bad")))
    assert snapshot(work) == before and "read_prepared" not in spies and steps == []


def test_a_truncated_training_state_is_one_line_on_resume(run, work, steps):
    folder = resumable(run, work / "cut")
    state = (folder / "student.state.pt").read_bytes()
    (folder / "student.state.pt").write_bytes(state[: len(state) // 2])
    before = snapshot(work)
    line = assert_one_line_error(invoke("train", "--resume", folder), str(folder / "student.state.pt"))
    assert "weights_only" not in line
    assert steps == [] and snapshot(work) == before


@pytest.fixture
def misfit(run, work) -> Path:
    """runs/misfit: a student whose first convolution takes another number of channels than its recipe says."""
    folder = resumable(run, work / "runs" / "misfit")
    weights = load_file(str(folder / "student.safetensors"))
    key = next(key for key, value in weights.items() if value.ndim == 4)
    weights[key] = weights[key][:, :1].contiguous()
    save_file(weights, str(folder / "student.safetensors"))
    return folder


@pytest.mark.parametrize("command", ["fuse", "bench", "resume"])
def test_weights_that_do_not_fit_their_recipe_are_one_line(work, data, spies, steps, misfit, command):
    args = {
        "fuse": [*FUSE, "-o", "f.png", "--checkpoint", "runs/misfit"],
        "bench": ["bench", "--data", data, "--checkpoint", "runs/misfit", "--methods", "", "--no-speed"],
        "resume": ["train", "--resume", "runs/misfit"],
    }[command]
    before = snapshot(work)
    line = assert_one_line_error(invoke(*args), str(Path("runs", "misfit", "student.safetensors")))
    assert "do not fit" in line
    assert snapshot(work) == before and "read_prepared" not in spies and steps == []


def test_fuse_refuses_another_number_of_photos_than_the_student_was_trained_on_before_reading_them(work, spies):
    Path("third.jpg").write_bytes(Path("over.jpg").read_bytes())
    before = snapshot(work)
    line = assert_one_line_error(invoke("fuse", "under.jpg", "over.jpg", "third.jpg", "-o", "f.png", "--checkpoint", "runs/tiny"), "2 exposures")
    assert "3" in line and str(Path("runs", "tiny")) in line
    assert spies == [] and snapshot(work) == before


# ----- 5. --vgg-weights of the wrong kind: one line, never a hint to unpickle ------------------
class NotWeights:
    """An object a weights-only loader refuses."""


def write_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"features.0.weight": NotWeights()}))


WRONG_VGG_FILES = {
    "pickle.pth": (write_pickle, "objects other than tensors"),
    "torch_pickle.pth": (lambda path: torch.save({"features.0.weight": NotWeights()}, path), "objects other than tensors"),
    "tensor.pth": (lambda path: torch.save(torch.zeros(3), path), "a Tensor"),
    "list.pth": (lambda path: torch.save([torch.zeros(3)], path), "a list"),
    "torch_file.safetensors": (lambda path: torch.save({"w": torch.zeros(3)}, path), "not a VGG19 state dict"),
    "safetensors_file.pth": (lambda path: save_file({"w": torch.zeros(3)}, str(path)), "not a VGG19 state dict"),
    "text.pth": (lambda path: path.write_text("not weights\n"), "neither"),
    "text.safetensors": (lambda path: path.write_text("not weights\n"), "neither"),
}


@pytest.mark.parametrize("name", list(WRONG_VGG_FILES))
def test_vgg_weights_of_the_wrong_kind_say_what_is_expected_and_found(tmp_path, name):
    write, found = WRONG_VGG_FILES[name]
    write(tmp_path / name)
    with pytest.raises(FusionkitError) as raised, warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be a second line on stderr
        load_vgg19_features(tmp_path / name)
    message = str(raised.value)
    assert "\n" not in message and name in message and found in message, message
    assert "safetensors" in message and "weights_only=True" in message and "weights_only=False" not in message


def test_vgg_weights_that_are_a_pickle_are_one_line_in_train(work, data, steps):
    write_pickle(Path("vgg.pth"))
    before = snapshot(work)
    line = assert_one_line_error(invoke(*TRAIN, "--data", data, "--vgg-weights", "vgg.pth", "--loss", "perceptual=1"), "--vgg-weights vgg.pth")
    assert "weights_only=False" not in line
    assert steps == [] and snapshot(work) == before
