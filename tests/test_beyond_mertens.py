"""The parts that take fusion beyond Mertens: the ``tones`` loss, the ``crushed_shadows`` metric, the
``mef_opt`` method, training without a teacher, and the shipped pretrained student."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fusionkit
from fusionkit.data.io import read_image
from fusionkit.evaluation.fusion_metrics import crushed_shadows, qabf
from fusionkit.evaluation.mef_ssim import mef_ssim_rgb
from fusionkit.runs.checkpoint import load_model, read_recipe
from fusionkit.training.config import make_config
from fusionkit.training.engine import train
from tests.test_real_brackets import TINY, textured_brackets

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUSIONKIT_SHARED_DATA") or REPO.parent / "shared" / "data")
SCENE = SHARED / "brackets" / "test" / "pmef1-cemetery-tree-2"


def real_scene(count: int, side: int = 160) -> torch.Tensor:
    """``count`` exposures of one brackets/test scene, spread darkest to brightest, scaled to ``side`` px (1, K, 3, H, W)."""
    if not SCENE.is_dir():
        pytest.skip(f"no real data in {SHARED} (set FUSIONKIT_SHARED_DATA to the folder holding brackets/)")
    files = sorted(SCENE.glob("*.jpg"))
    picks = [files[round(i * (len(files) - 1) / (count - 1))] for i in range(count)]
    images = torch.stack([read_image(p) for p in picks])
    scale = side / max(images.shape[-2:])
    size = [round(n * scale) for n in images.shape[-2:]]
    return torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=True).clamp(0, 1)[None]


def test_crushed_shadows_counts_black_pixels_the_brightest_exposure_shows():
    dark = torch.zeros(1, 3, 4, 4)
    bright = torch.full((1, 3, 4, 4), 0.5)
    bright[..., 0, :] = 0.05  # too dark in the brightest exposure too: not counted
    exposures = torch.stack([dark, bright], 1)
    fused = torch.full((1, 3, 4, 4), 0.3)
    fused[..., 1, :2] = 0.01  # 2 of the 12 shown pixels turned black
    fused[..., 0, :] = 0.0
    assert crushed_shadows(fused, exposures).item() == pytest.approx(2 / 16)
    assert fusionkit.create("metric", "crushed_shadows").higher_is_better is False


def test_tones_loss_is_zero_for_mertens_and_lifts_crushed_shadows():
    exposures = real_scene(2)
    tones = fusionkit.create("loss", "tones", shadow_weight=0.0)
    mertens = fusionkit.create("method", "mertens")(exposures)
    assert tones(mertens, exposures, None).item() < 1e-3
    darker = (mertens * 0.5).requires_grad_(True)
    assert tones(darker, exposures, None).item() > 0.05
    black = torch.zeros_like(mertens, requires_grad=True)
    loss = fusionkit.create("loss", "tones", block=8)(black, exposures, None)
    loss.backward()
    assert black.grad.abs().sum() > 0 and (black.grad <= 0).all()  # raising black pixels lowers the loss


@pytest.mark.parametrize("options", [{"block": 0}, {"shadow_floor": 2}, {"shadow_weight": -1}])
def test_tones_loss_rejects_bad_options(options):
    with pytest.raises(fusionkit.FusionkitError, match="tones"):
        fusionkit.create("loss", "tones", **options)


def test_qabf_loss_follows_the_metric_and_its_gradient_sharpens_edges():
    exposures = real_scene(2)
    edges = fusionkit.create("loss", "qabf")
    fused = {name: fusionkit.create("method", name)(exposures) for name in ("mertens", "mean")}
    for name, image in fused.items():  # continuous luma against 8-bit levels: close, not equal
        assert 1 - edges(image, exposures, None).item() == pytest.approx(qabf(image, exposures).item(), abs=0.05), name
    assert edges(fused["mertens"], exposures, None) < edges(fused["mean"], exposures, None)
    blurred = torch.nn.functional.avg_pool2d(fused["mertens"], 5, stride=1, padding=2, count_include_pad=False).requires_grad_(True)
    loss = edges(blurred, exposures, None)
    loss.backward()
    assert torch.isfinite(blurred.grad).all()
    with torch.no_grad():  # one small step against the gradient preserves more of the exposures' edges
        stepped = (blurred - 0.02 * blurred.grad / blurred.grad.abs().max()).clamp(0, 1)
    assert qabf(stepped, exposures) > qabf(blurred.detach(), exposures)


def test_mef_opt_raises_mef_ssim_above_mertens_on_a_real_pair():
    exposures = real_scene(2, side=176)
    mertens = fusionkit.create("method", "mertens")(exposures)
    with torch.inference_mode():  # as fuse calls it
        optimised = fusionkit.create("method", "mef_opt", iterations=25)(exposures)
    assert optimised.shape == mertens.shape and 0 <= optimised.min() and optimised.max() <= 1
    q = lambda x: (x * 255).round() / 255
    gain = (mef_ssim_rgb(q(optimised), exposures) - mef_ssim_rgb(q(mertens), exposures)).item()
    assert gain > 0.002


def test_mef_opt_edge_weight_keeps_more_edges():
    exposures = real_scene(2, side=176)
    with torch.inference_mode():
        plain, edged = (fusionkit.create("method", "mef_opt", iterations=25, edge_weight=w)(exposures) for w in (0.0, 2.0))
    assert qabf(edged, exposures) > qabf(plain, exposures)


def test_mef_opt_fine_levels_keep_mertens_tones():
    exposures = real_scene(2, side=176)
    mertens = fusionkit.create("method", "mertens")(exposures)
    tones = lambda x: torch.nn.functional.avg_pool2d(x, 16)
    with torch.inference_mode():
        every, fine = (fusionkit.create("method", "mef_opt", iterations=25, tone_weight=0, fine_levels=n)(exposures) for n in (None, 2))
    assert (tones(fine) - tones(mertens)).abs().mean() < 0.2 * (tones(every) - tones(mertens)).abs().mean()
    q = lambda x: (x * 255).round() / 255
    assert mef_ssim_rgb(q(fine), exposures) > mef_ssim_rgb(q(mertens), exposures)


def test_mef_opt_rejects_bad_options():
    with pytest.raises(fusionkit.FusionkitError, match="iterations"):
        fusionkit.create("method", "mef_opt", iterations=0)
    with pytest.raises(fusionkit.FusionkitError, match="edge_weight"):
        fusionkit.create("method", "mef_opt", edge_weight=-1)
    with pytest.raises(fusionkit.FusionkitError, match="fine_levels"):
        fusionkit.create("method", "mef_opt", fine_levels=0)
    with pytest.raises(fusionkit.FusionkitError, match="per_level"):
        fusionkit.create("method", "mef_opt", per_level="yes")


def test_student_without_distillation_trains_without_a_teacher(tmp_path):
    data = textured_brackets(tmp_path / "data", reference=False)
    config = make_config(TINY, {"data": str(data), "stage": "student", "max_side": 60, "losses": {"distill": 0, "perceptual": 0, "tones": 0.3},
                                "student_options": {"num_inputs": None}, "run_dir": str(tmp_path / "run")})
    run = train(config)
    recipe = read_recipe(run / "student")
    assert recipe["complete"] and not (run / "teacher.json").exists()
    assert recipe["losses"] == {"mef_ssim": 1.0, "tones": 0.3}
    assert recipe["options"]["fine_levels"] == 6 and recipe["options"]["refine_steps"] == 10  # the recipe's: as the shipped student fuses


def test_qabf_loss_trains_a_student(tmp_path):
    data = textured_brackets(tmp_path / "data", reference=False)
    config = make_config(TINY, {"data": str(data), "stage": "student", "max_side": 60, "run_dir": str(tmp_path / "run"),
                                "losses": {"distill": 0, "perceptual": 0, "qabf": 0.15}, "student_options": {"num_inputs": None}})
    run = train(config)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows and all("loss_qabf" in row and 0 < row["loss_qabf"] < 1 for row in rows)
    assert read_recipe(run / "student")["losses"] == {"mef_ssim": 1.0, "tones": 0.3, "qabf": 0.15}


def test_shipped_student_is_small_and_says_how_it_was_made():
    (entry,) = [c for c in fusionkit.available("pretrained") if c.name == "se_strip_real"]
    path = Path(entry.factory())
    assert path.stat().st_size <= 5 * 2**20
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["kind"] == "student" and meta["options"]["num_inputs"] is None
    assert {"command", "data", "validation"} <= set(meta["shipped"])


@pytest.mark.parametrize("count", [2, 3, 5])
def test_shipped_student_fuses_real_brackets_of_any_size(count):
    from fusionkit.inference.pipeline import fuse_with_model

    model, recipe = load_model(Path(fusionkit.component("pretrained", "se_strip_real").factory()).with_suffix(""), map_location="cpu")
    exposures = real_scene(count)
    fused = fuse_with_model(model.eval(), exposures, work_size=128)
    assert fused.shape == (1, 3, *exposures.shape[-2:]) and torch.isfinite(fused).all()
    mertens = fusionkit.create("method", "mertens")(exposures)
    assert (fused - mertens).abs().mean() < 0.1  # a fusion of these photos, near Mertens' tones


def test_shipped_student_beats_mertens_on_a_held_out_scene_without_crushing_its_shade():
    """The validation scene where Mertens crushes most (a street cafe's shade, every 5th brackets/train scene is held out)."""
    from fusionkit.inference.pipeline import fuse_with_model

    scene = SHARED / "brackets" / "train" / "pmef3-marketmires2"
    if not scene.is_dir():
        pytest.skip(f"no real data in {SHARED} (set FUSIONKIT_SHARED_DATA to the folder holding brackets/)")
    files = sorted(scene.glob("*.jpg"))
    exposures = torch.stack([read_image(files[0]), read_image(files[-1])])[None]
    model, recipe = load_model(Path(fusionkit.component("pretrained", "se_strip_real").factory()).with_suffix(""), map_location="cpu")
    assert recipe["options"]["shadow_fill"] is True
    with torch.no_grad():
        fused = fuse_with_model(model.eval(), exposures, work_size=512)
    mertens = fusionkit.create("method", "mertens")(exposures)
    assert crushed_shadows(mertens, exposures).item() > 0.003 and crushed_shadows(fused, exposures).item() == 0
    assert mef_ssim_rgb(fused, exposures).item() > mef_ssim_rgb(mertens, exposures).item() + 0.004
    assert qabf(fused, exposures).item() > qabf(mertens, exposures).item()


def test_fuse_without_a_run_uses_the_shipped_student_and_says_so(tmp_path):
    exposures = real_scene(2)
    from fusionkit.data.io import write_image

    paths = [write_image(tmp_path / f"{i}.png", exposures[0, i]) for i in range(2)]
    entry_point = Path(sys.executable).with_name("fusionkit")
    done = subprocess.run([str(entry_point), "fuse", *map(str, paths), "-o", "f.png"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "f.png").is_file()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["fusionkit: no trained run in runs/; fusing with the pretrained student se_strip_real"]
