"""``benchmarks/distil_mef_opt.py`` end to end on a tiny data folder: the teacher's logits are written once (a
rerun skips them), the student comes nearer the teacher's weights on the held-out scene than Mertens' (zero
logits), the result loads and fuses as a student checkpoint, and a scored run ships with its scores and the fusing options it was scored with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusionkit.runs.checkpoint import load_model
from tests.test_real_brackets import textured_brackets

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "distil_mef_opt.py"


def distil(*args: str, data: Path) -> str:
    command = [sys.executable, str(SCRIPT), "--data", str(data), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout


def test_the_student_learns_the_teachers_logits(tmp_path):
    data = tmp_path / "shared"
    textured_brackets(data / "brackets", reference=False, exposures=3)
    (data / "brackets" / "test").rename(data / "brackets" / "extra")  # five training scenes: one held out
    for scene in (data / "brackets" / "extra").iterdir():
        scene.rename(data / "brackets" / "train" / f"x{scene.name}")
    first, *others = sorted((data / "brackets" / "train").iterdir())
    for scene in others:  # one picture everywhere: the held-out scene is learnable from the others
        for photo in first.iterdir():
            shutil.copy(photo, scene / photo.name)
    textured_brackets(data / "sice", reference=True, exposures=2)
    teacher = tmp_path / "teacher"
    distil("teach", str(teacher), "--teacher-option", "iterations=15", "--teacher-option", "edge_weight=0.15", data=data)
    written = sorted(p.name for p in teacher.rglob("*.safetensors"))
    assert len(list((teacher / "val").iterdir())) == 1 and len(written) == 6 + 4  # 5 + 4 sice pairs, 1 held out
    stamp = {p: p.stat().st_mtime_ns for p in teacher.rglob("*.safetensors")}
    distil("teach", str(teacher), data=data)
    assert {p: p.stat().st_mtime_ns for p in teacher.rglob("*.safetensors")} == stamp  # a rerun finishes only the rest
    extra = tmp_path / "teacher_extra"  # more training scenes from another bracket folder (here sice's, again)
    distil("teach", str(extra), "--extra", str(data / "sice"), "--teacher-option", "iterations=2", data=data)
    assert len(list(extra.glob("train/extra-*.safetensors"))) == 4 and len(list((extra / "val").iterdir())) == 1

    run = tmp_path / "run"
    distil("train", str(teacher), str(run), "--steps", "40", "--eval-every", "20", "--batch-size", "2", "--crop", "48", "--lr", "3e-3", "--tone-weight", "0.3", data=data)
    log = json.loads((run / "log.json").read_text())
    assert log[0]["step"] == 0 and log[-1]["step"] == 40
    assert log[0]["validation"] == log[0]["mertens"]  # the head starts at zero logits: Mertens' weights
    assert min(row["validation"] for row in log[1:]) < 0.9 * log[0]["mertens"]
    model, recipe = load_model(run / "student")
    assert recipe["recipe"]["teacher"] == str(teacher) and recipe["losses"] == {"teacher_weights": 1.0, "tones": 0.3}
    exposures = torch.rand(1, 3, 3, 40, 52)
    with torch.no_grad():
        logits = model.eval()(torch.randn(1, 9, 40, 52))
    assert logits.shape == (1, 3, 40, 52) and torch.isfinite(logits).all()
    assert model.fuse(exposures, lambda top, bottom: logits[..., top:bottom, :]).shape == (1, 3, 40, 52)

    fine = tmp_path / "fine"  # from the first student, learned weights at the two finest levels, a shadow floor on its blend
    distil("train", str(teacher), str(fine), "--steps", "10", "--eval-every", "10", "--batch-size", "2", "--crop", "48",
           "--init", str(run / "student"), "--fine-levels", "2", "--shadow-emphasis", "50", "--tone-weight", "0.01",
           "--shadow-weight", "1000", data=data)
    model, recipe = load_model(fine / "student")
    assert model.blend.fine_levels == 2 and recipe["options"]["fine_levels"] == 2 and recipe["recipe"]["shadow_emphasis"] == 50
    start = json.loads((fine / "log.json").read_text())[0]
    assert start["validation"] == min(row["validation"] for row in log[1:])  # starts where the first student's best step was

    shipped = tmp_path / "shipped" / "se_strip_real.safetensors"
    with pytest.raises(subprocess.CalledProcessError):
        distil("ship", str(fine), "--to", str(shipped), data=data)  # not scored yet
    distil("score", str(fine), "--student-option", "shadow_fill=true", data=data)
    distil("ship", str(fine), "--to", str(shipped), data=data)
    model, recipe = load_model(shipped.with_suffix(""))
    assert model.blend.fine_levels == 2 and "--fine-levels 2" in recipe["shipped"]["command"]
    assert model.blend.shadow_fill is not None and recipe["shipped"]["student_options"] == {"shadow_fill": True}  # as scored
    scores = json.loads((fine / "validation.json").read_text())
    assert recipe["shipped"]["validation"]["mef_ssim"] == round(scores["student"]["mef_ssim"], 5)
    assert recipe["shipped"]["validation"]["mertens"]["qabf"] == round(scores["mertens"]["qabf"], 5)
    assert scores["student"]["seconds_per_pair"] > 0 and scores["cpu"]

    # Shipped again with other options (the run started from the shipped file, which holds its own weights):
    # the record of what it started from is kept, not replaced by the shipped file's own.
    again = tmp_path / "again"
    shutil.copytree(fine, again)
    meta = json.loads((again / "student.json").read_text())
    meta["recipe"]["init"] = str(shipped.with_suffix(""))
    (again / "student.json").write_text(json.dumps(meta))
    distil("score", str(again), "--student-option", "shadow_fill=true", "--student-option", "refine_steps=1", data=data)
    first_init = recipe["shipped"]["init"]
    distil("ship", str(again), "--to", str(shipped), data=data)
    model, recipe = load_model(shipped.with_suffix(""))
    assert model.blend.refine is not None and recipe["shipped"]["student_options"] == {"shadow_fill": True, "refine_steps": 1}
    assert recipe["shipped"]["init"] == first_init

