"""Metrics and losses are components: declared reference needs and direction, batched, composable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import fusionkit
from fusionkit.cli.main import cli
from fusionkit.evaluation.mef_ssim import mef_ssim_rgb

SHARED = Path(os.environ.get("FUSIONKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def stack(n=2, k=2, h=48, w=48, seed=0):
    torch.manual_seed(seed)
    scene = torch.rand(n, 1, 3, h, w)
    return (scene * torch.linspace(0.4, 2.2, k).view(1, k, 1, 1, 1)).clamp(0, 1)


@pytest.mark.parametrize(
    ("name", "needs_reference"),
    [("psnr", True), ("ssim", True), ("mef_ssim", False), ("qabf", False), ("nmi", False)],
)
def test_metric_components_declare_what_they_need_and_score_a_batch(name, needs_reference):
    metric = fusionkit.create("metric", name)
    assert metric.needs_reference is needs_reference and metric.higher_is_better
    exposures = stack()
    fused = exposures.mean(dim=1)
    reference = fused.flip(-1) if needs_reference else None
    scores = metric(fused, exposures, reference)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    one = metric(fused[:1], exposures[:1], reference[:1] if needs_reference else None)
    assert torch.allclose(scores[:1].double(), one.double(), atol=1e-6)


def test_full_reference_metric_without_a_reference_is_a_clear_error():
    with pytest.raises(fusionkit.FusionkitError, match="'psnr' compares with a reference"):
        fusionkit.create("metric", "psnr")(stack().mean(1), stack())


def test_mef_ssim_loss_is_one_minus_the_index_and_trains():
    """In float on [0, 1] luma it tracks the metric (which rounds to 8-bit grey levels) and has gradients."""
    exposures = stack(h=64, w=64)
    fused = exposures.mean(dim=1).requires_grad_(True)
    loss = fusionkit.create("loss", "mef_ssim")
    value = loss(fused, exposures, None)
    value.backward()
    assert abs(float(value) - (1 - float(mef_ssim_rgb(fused.detach(), exposures).mean()))) < 0.01
    assert fused.grad is not None and torch.isfinite(fused.grad).all() and fused.grad.abs().sum() > 0
    assert not loss.needs_reference
    rgb = fusionkit.create("loss", "mef_ssim", space="rgb")(fused, exposures, None)
    assert 0 <= float(rgb) < 1


def test_mef_ssim_loss_fits_small_crops():
    """Crops too small for three 11-px scales use fewer scales instead of failing."""
    exposures = stack(h=32, w=32)
    assert torch.isfinite(fusionkit.create("loss", "mef_ssim")(exposures.mean(1), exposures, None))


def test_loss_options_are_checked():
    with pytest.raises(fusionkit.FusionkitError, match="space must be 'luma' or 'rgb'"):
        fusionkit.create("loss", "mef_ssim", space="lab")


def test_perceptual_loss_without_weights_says_it_is_off(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    loss = fusionkit.create("loss", "perceptual")
    assert not loss.available and "perceptual loss off" in loss.note


def test_l1_needs_the_reference():
    loss = fusionkit.create("loss", "l1")
    exposures = stack()
    assert loss.needs_reference
    assert float(loss(exposures[:, 0], exposures, exposures[:, 0])) == 0.0


def test_score_prints_one_json_object(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    exposures = stack(n=1, h=48, w=48)[0]
    paths = []
    for i, image in enumerate([*exposures, exposures.mean(0)]):
        path = tmp_path / f"{i}.png"
        iio.imwrite(path, (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        paths.append(str(path))
    result = CliRunner().invoke(cli, ["score", paths[2], "--inputs", paths[0], paths[1], "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert set(scores) == {"mef_ssim", "qabf", "nmi", "crushed_shadows"}  # no reference: no-reference metrics only
    result = CliRunner().invoke(cli, ["score", paths[2], "--inputs", paths[0], paths[1], "--reference", paths[0], "--metric", "psnr", "--json"])
    assert result.exit_code == 0 and set(json.loads(result.output)) == {"psnr"}
    result = CliRunner().invoke(cli, ["score", paths[2], paths[0]])
    assert result.exit_code == 1 and "--inputs" in result.output


def test_score_matches_the_mef_ssim_reference_values():
    folder = SHARED / "mefssim-reference"
    if not folder.is_dir():
        pytest.skip(f"needs the shared data: {folder} not found")
    rows = [line.split("\t") for line in (folder / "scores.tsv").read_text().splitlines()[1:3]]
    for fused, expected, *inputs in rows:
        result = CliRunner().invoke(cli, ["score", str(folder / fused), "--inputs", *[str(folder / p) for p in inputs], "--metric", "mef_ssim", "--json"])
        assert result.exit_code == 0, result.output
        assert abs(json.loads(result.output)["mef_ssim"] - float(expected)) < 1e-4


def test_score_of_an_image_too_small_for_a_named_metric_is_one_line(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    for name in ("a", "b", "f"):
        iio.imwrite(tmp_path / f"{name}.png", np.zeros((20, 20, 3), np.uint8))
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "f.png"), "--inputs", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                      "--metric", "mef_ssim"])
    assert result.exit_code == 1 and "too small" in result.output and "Traceback" not in result.output
