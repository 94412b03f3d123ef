"""Bracket datasets end to end: training without a reference, bench with no-reference metrics only,
and a K-agnostic student that trains, benches and fuses three exposures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fusionkit.cli.main import cli
from fusionkit.runs.checkpoint import read_recipe
from fusionkit.training.config import make_config
from fusionkit.training.engine import train
from tests.fake_exposure_data import make_fake_brackets

TINY = {"width": 8, "crop": 48, "batch_size": 2, "teacher_steps": 4, "student_steps": 4, "device": "cpu", "log_every": 1}


def textured_brackets(root: Path, reference: bool, exposures: int = 3) -> Path:
    """Fake brackets with texture (MEF-SSIM needs 44 px and some structure)."""
    make_fake_brackets(root, {"train": 4, "val": 1, "test": 2}, exposures=exposures, reference=reference, size=(56, 64))
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for path in sorted(root.rglob("*.png")):
        image = iio.imread(path).astype(np.float32)
        image[..., 0] = rng.uniform(0, 255, image.shape[:2])
        image[..., 1] = np.linspace(0, 255, image.shape[1])[None]
        iio.imwrite(path, image.clip(0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def unreferenced(tmp_path_factory) -> Path:
    return textured_brackets(tmp_path_factory.mktemp("brackets") / "data", reference=False)


@pytest.fixture(scope="module")
def referenced(tmp_path_factory) -> Path:
    return textured_brackets(tmp_path_factory.mktemp("sice") / "data", reference=True)


def test_student_trains_on_brackets_without_a_reference(unreferenced, referenced, tmp_path):
    """Only reference-free terms train the student; the teacher comes from data that has references."""
    teacher = train(make_config({**TINY, "data": str(referenced), "stage": "teacher", "run_dir": str(tmp_path / "t")}))
    run = train(make_config({**TINY, "data": str(unreferenced), "stage": "student", "run_dir": str(tmp_path / "s"),
                             "teacher_checkpoint": str(teacher / "teacher.safetensors"), "losses": {"perceptual": 0}}))
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows and all(set(r) >= {"loss", "loss_mef_ssim"} and "loss_l1" not in r and "loss_distill" not in r for r in rows)
    recipe = read_recipe(run / "student")
    assert recipe["complete"] and recipe["val_psnr"] is None and 0 < recipe["val_mef_ssim"] <= 1


def test_teacher_cannot_train_without_references(unreferenced, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(unreferenced), "--run-dir", str(tmp_path / "r"),
                                      "--width", "8", "--crop", "48", "--batch-size", "2", "--teacher-steps", "2", "--student-steps", "2"])
    assert result.exit_code == 1 and "the teacher learns reference images and this data has none" in result.output


def test_bench_without_a_reference_reports_no_reference_metrics_only(unreferenced, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: training-free methods only
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--data", str(unreferenced), "--no-speed", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    labels = [m["label"] for m in report["models"]]
    assert "mertens" in labels and "best_input" not in labels  # the oracle has nothing to look at
    for model in report["models"]:
        assert set(model["quality"]) == {"extremes"}
        assert set(model["quality"]["extremes"]) == {"mef_ssim", "qabf", "nmi", "crushed_shadows", "pairs"}
        assert model["quality"]["extremes"]["pairs"] == 2
    assert "MEF-SSIM" in result.output and "PSNR" not in result.output


def test_bench_with_a_reference_and_chosen_metrics(referenced, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--data", str(referenced), "--no-speed", "--methods", "mertens,best_input",
                                      "--metric", "psnr", "--metric", "mef_ssim", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [m["label"] for m in report["models"]] == ["mertens", "best_input"]
    assert set(report["models"][0]["quality"]["extremes"]) == {"psnr", "mef_ssim", "pairs"}


def test_three_exposures_train_bench_and_fuse_with_a_k_agnostic_student(referenced, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--data", str(referenced), "--run-dir", str(run), "--width", "8", "--crop", "48", "--batch-size", "2",
        "--teacher-steps", "3", "--student-steps", "3", "--exposures", "3", "--student-option", "num_inputs=null",
        "--loss", "perceptual=0", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--data", str(referenced), "--checkpoint", str(run), "--methods", "mertens",
                                      "--exposures", "3", "--no-speed", "--json", str(out)])
    assert result.exit_code == 0, result.output
    student = json.loads(out.read_text())["models"][0]
    assert student["label"].startswith("se_strip") and student["quality"]["3 exposures"]["pairs"] == 2
    scene = sorted((referenced / "test" / "inputs").iterdir())[0]
    fused = tmp_path / "fused.png"
    result = CliRunner().invoke(cli, ["fuse", *map(str, sorted(scene.iterdir())), "-o", str(fused), "--checkpoint", str(run)])
    assert result.exit_code == 0, result.output
    import imageio.v3 as iio

    assert iio.imread(fused).shape == (56, 64, 3)
