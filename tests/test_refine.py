"""Fuse-time refinement: ``mef_opt``'s ascent started from a student's weights (``refine_steps``)."""

from __future__ import annotations

import pytest
import torch

import fusionkit
from fusionkit.api import WeightBlend
from fusionkit.evaluation.mef_ssim import mef_ssim_rgb
from fusionkit.inference.pipeline import fuse_with_model
from tests.test_beyond_mertens import real_scene

TINY_STUDENT = {"width": 8, "num_blocks": 1, "num_inputs": None, "fine_levels": 3}


def student(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return fusionkit.create("student", "se_strip", **TINY_STUDENT, **options).eval()


def quantised(image: torch.Tensor) -> torch.Tensor:
    return (image * 255).round() / 255


def test_refining_a_students_weights_raises_mef_ssim_on_a_real_pair():
    exposures = real_scene(2, side=160)
    plain, refined = student(), student(refine_steps=15)
    refined.load_state_dict(plain.state_dict())  # the same network: only the refinement differs
    before, after = (fuse_with_model(model, exposures) for model in (plain, refined))
    assert after.shape == before.shape and 0 <= after.min() and after.max() <= 1
    gain = (mef_ssim_rgb(quantised(after), exposures) - mef_ssim_rgb(quantised(before), exposures)).item()
    assert gain > 0.002


def test_refinement_starts_from_the_students_weights():
    """mef_opt refining zero logits is mef_opt itself (per level); refining other logits ends elsewhere."""
    exposures = real_scene(2, side=96)
    method = fusionkit.create("method", "mef_opt", iterations=3, per_level=True)
    blend = WeightBlend("pyramid", "mertens")
    zero = torch.zeros(1, 2, *exposures.shape[-2:])
    with torch.no_grad():
        from_zero = blend(exposures, zero, method.refine(exposures, zero, blend))
        torch.testing.assert_close(from_zero, method.fuse(exposures, None), atol=1e-6, rtol=0)
        start = torch.randn_like(zero)
        refined, plain = blend(exposures, start, method.refine(exposures, start, blend)), blend(exposures, start)
    assert refined.shape == plain.shape and (refined - plain).abs().max() > 1e-3


def test_refinement_corrects_each_level_and_leaves_the_photos_levels_finer_than_its_copy():
    """Optimised on a copy half the photos' size, the copy's level l corrects the photos' level l + 1; level 0 is kept."""
    exposures = real_scene(3, side=120)
    method = fusionkit.create("method", "mef_opt", iterations=2, work_size=64)
    blend = WeightBlend("pyramid", "mertens", fine_levels=3)
    start = torch.zeros(1, 3, *exposures.shape[-2:])
    correction = method.refine(exposures, start, blend)
    height, width = exposures.shape[-2:]
    assert correction(0, 0, 8) is None and correction(4, 0, 1) is None
    for level in (1, 2, 3):
        logits = correction(level, 0, 4)
        assert logits.shape == (1, 3, 1, 4, -(-width // 2**level)) and torch.isfinite(logits).all() and logits.abs().max() > 0
    with torch.no_grad():
        fused = blend(exposures, start, correction)
    assert fused.shape == (1, 3, height, width) and torch.isfinite(fused).all()


def test_per_level_mef_opt_beats_one_shared_correction_on_a_real_pair():
    """The method's per_level option: a grid of logits at each level reaches a higher MEF-SSIM in as many steps."""
    exposures = real_scene(2, side=128)
    scores = {
        per_level: mef_ssim_rgb(fusionkit.create("method", "mef_opt", iterations=10, per_level=per_level).fuse(exposures, None), exposures).item()
        for per_level in (False, True)
    }
    assert scores[True] > scores[False]


def test_training_sees_the_network_without_refinement():
    """With gradients (training) the blend uses the network's logits as they are."""
    exposures = real_scene(2, side=64)
    logits = torch.randn(1, 2, *exposures.shape[-2:], requires_grad=True)
    plain = WeightBlend("pyramid", "mertens")(exposures, logits)
    refined = WeightBlend("pyramid", "mertens", refine=fusionkit.create("method", "mef_opt", iterations=2).refine)(exposures, logits)
    assert torch.equal(plain, refined) and refined.requires_grad


@pytest.mark.parametrize("options, message", [
    ({"refine_steps": -1}, "refine_steps"), ({"refine_steps": True}, "refine_steps"), ({"refine_steps": 1.5}, "refine_steps"),
    ({"refine_steps": 2, "head": "kd_upsample", "num_inputs": 2}, "weight-map head"),
])
def test_refine_steps_rejects_bad_options(options, message):
    with pytest.raises(fusionkit.FusionkitError, match=message):
        fusionkit.create("student", "se_strip", **{**TINY_STUDENT, **options})


def test_refinement_needs_a_pyramid_on_mertens_weights():
    refine = fusionkit.create("method", "mef_opt", iterations=1).refine
    with pytest.raises(fusionkit.FusionkitError, match="refin"):
        WeightBlend("direct", "mertens", refine=refine)
    with pytest.raises(fusionkit.FusionkitError, match="refin"):
        WeightBlend("pyramid", "none", refine=refine)


def test_fuse_refine_steps_overrides_the_checkpoints(tmp_path):
    from click.testing import CliRunner

    from fusionkit.cli.main import cli
    from fusionkit.data.io import read_image, write_image
    from fusionkit.runs.checkpoint import save_model

    exposures = real_scene(2, side=96)
    photos = [str(write_image(tmp_path / f"in{i}.png", exposures[0, i])) for i in range(2)]
    checkpoint = tmp_path / "student.safetensors"
    save_model(checkpoint, student(), {"kind": "student", "name": "se_strip", "options": TINY_STUDENT, "color": "rgb"})
    fused = {}
    for steps in ("0", "5"):
        result = CliRunner().invoke(cli, ["fuse", *photos, "-o", str(tmp_path / f"fused{steps}.png"), "--checkpoint", str(checkpoint), "--refine-steps", steps, "--align", "none"])
        assert result.exit_code == 0, result.output
        fused[steps] = read_image(tmp_path / f"fused{steps}.png")[None]
    q = lambda steps: mef_ssim_rgb(fused[steps], exposures).item()
    assert q("5") > q("0")
    for args, text in ((["--method", "mertens"], "--refine-steps refines a student's weights"), (["--checkpoint", str(checkpoint)], "give 0 or more")):
        result = CliRunner().invoke(cli, ["fuse", *photos, "-o", str(tmp_path / "x.png"), *args, "--refine-steps", "-1" if "give" in text else "3"])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and text in lines[0], result.output


def test_refinement_runs_in_float32_under_autocast():
    """fuse may run the network under bf16 autocast; the ascent (its edge term convolves) must not."""
    exposures = real_scene(2, side=64)
    method = fusionkit.create("method", "mef_opt", iterations=3, edge_weight=0.15)
    blend = WeightBlend("pyramid", "mertens")
    start = torch.zeros(1, 2, *exposures.shape[-2:])
    plain = method.refine(exposures, start, blend)(0, 0, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = method.refine(exposures, start, blend)(0, 0, 64)
    assert autocast.dtype == torch.float32 and torch.allclose(autocast, plain, atol=1e-5)
