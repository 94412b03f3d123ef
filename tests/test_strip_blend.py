"""Large images are blended strip by strip (``fusionkit.models.laplacian_blend.blend_rows``).

Each pyramid level's finest band is made from a few rows at a time and the weights (Mertens',
a student's logits through the guided filter) are asked for a strip at a time. These tests make
the strips tiny so every schedule runs on small images, and pin it to the whole-image blend.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fusionkit
from fusionkit.colour import luma
from fusionkit.data.io import pixels_to_tensor, read_image, write_image
from fusionkit.data.stack import read_stack
from fusionkit.inference.guided import guided_coefficients, guided_rows, guided_upsample
from fusionkit.inference.pipeline import fuse_at_work_size, student_input
from fusionkit.models import laplacian_blend
from fusionkit.models.blend import WeightBlend, mertens_weights
from fusionkit.models.laplacian_blend import HALO, blend_rows, pyramid_blend
from tests.random_brackets import random_bracket
from tests.test_fast_path import _smooth_exposures, _student

TINY_STRIP = 8


@pytest.fixture
def strips(monkeypatch) -> list[tuple[int, int, int, int]]:
    """Every image is blended in strips of 8 rows; returns the strips each level was cut into."""
    monkeypatch.setattr(laplacian_blend, "AT_ONCE_VALUES", 0)
    monkeypatch.setattr(laplacian_blend, "STRIP_ROWS", TINY_STRIP)
    seen: list[tuple[int, int, int, int]] = []
    original = laplacian_blend._strips

    def recorded(height, device):
        for strip in original(height, device):
            seen.append(strip)
            yield strip

    monkeypatch.setattr(laplacian_blend, "_strips", recorded)
    return seen


def _autograd_blend(exposures, weights, coarse, levels, fine_levels):
    """The one-exposure-at-a-time path, taken whenever gradients flow: the reference."""
    fused = pyramid_blend(exposures.clone().requires_grad_(True), weights, levels, coarse, fine_levels)
    return fused.detach()


CASES = [
    pytest.param(None, None, 0, id="plain"),
    pytest.param(2, None, 0, id="levels-2"),
    pytest.param(0, None, 0, id="levels-0"),
    pytest.param(None, "coarse", 0, id="coarse-fine0"),
    pytest.param(None, "coarse", 1, id="coarse-fine1"),
    pytest.param(None, "coarse", 2, id="coarse-fine2"),
    pytest.param(None, "coarse", 20, id="coarse-fine-all"),
]


@pytest.mark.parametrize("size", [(37, 29), (64, 50), (101, 33), (17, 90), (9, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("levels, coarse, fine_levels", CASES)
def test_strips_equal_the_whole_image_blend(strips, size, levels, coarse, fine_levels):
    """Blended in 8-row strips, every level and weight schedule gives the whole-image blend (to 1e-6)."""
    exposures, weights, coarse_weights = random_bracket(n=2, h=size[0], w=size[1], seed=size[0])
    coarse_weights = coarse_weights if coarse else None
    saved = [t.clone() for t in (exposures, weights)]
    with torch.no_grad():
        fused = pyramid_blend(exposures, weights, levels, coarse_weights, fine_levels)
    expected = _autograd_blend(exposures, weights, coarse_weights, levels, fine_levels)
    torch.testing.assert_close(fused, expected, atol=1e-6, rtol=0)
    assert all(torch.equal(t, s) for t, s in zip((exposures, weights), saved)), "inputs changed in place"
    if levels != 0 and size[0] > TINY_STRIP:
        assert len({top for top, *_ in strips}) > 1, "the blend did not run in strips"


def test_strips_read_only_their_rows_and_a_halo(strips):
    """Weights are asked for one strip at a time: at most STRIP_ROWS + 2 * HALO rows, every row covered."""
    exposures, weights, _ = random_bracket(h=61, w=23)
    asked: list[tuple[int, int]] = []

    def weights_of(top, bottom):
        asked.append((top, bottom))
        return weights[..., top:bottom, :], None

    with torch.no_grad():
        fused = blend_rows(exposures, weights_of)
    torch.testing.assert_close(fused, _autograd_blend(exposures, weights, None, None, 0), atol=1e-6, rtol=0)
    assert max(bottom - top for top, bottom in asked) <= TINY_STRIP + 2 * HALO
    covered = torch.zeros(61, dtype=torch.bool)
    for top, bottom in asked:
        covered[top:bottom] = True
    assert covered.all() and len(asked) == -(-61 // TINY_STRIP)


BLENDS = [
    pytest.param({}, id="default"),
    pytest.param({"fine_levels": 2}, id="fine-levels-2"),
    pytest.param({"fine_levels": 2, "prior_shift": -0.25}, id="tilted-prior"),
    pytest.param({"keep_balance": True}, id="keep-balance"),
    pytest.param({"mode": "direct"}, id="direct"),
    pytest.param({"prior": "none"}, id="no-prior"),
]


@pytest.mark.parametrize("options", BLENDS)
def test_weightblend_with_logit_rows_equals_the_whole_image_path(strips, options):
    """WeightBlend asking for logits a strip at a time equals the gradient path with whole logits (1e-5)."""
    generator = torch.Generator().manual_seed(5)
    exposures = torch.rand(2, 3, 3, 45, 38, generator=generator) * torch.tensor([0.4, 1.0, 1.6])[None, :, None, None, None]
    exposures = exposures.clamp(0, 1)
    logits = 2 * torch.randn(2, 3, 45, 38, generator=generator)
    blend = WeightBlend(**options)
    expected = blend(exposures.clone().requires_grad_(True), logits).detach()
    with torch.no_grad():
        from_rows = blend(exposures, lambda top, bottom: logits[..., top:bottom, :])
        from_tensor = blend(exposures, logits)
    torch.testing.assert_close(from_rows, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(from_tensor, from_rows, atol=0, rtol=0)
    assert len(strips) > 1


def test_mertens_method_in_strips_equals_the_whole_image_blend(strips):
    """The ``mertens`` method, weights made per strip, equals its whole-image blend (to 1e-6)."""
    exposures, _, _ = random_bracket(n=1, k=3, h=50, w=41, seed=3)
    mertens = fusionkit.create("method", "mertens")
    with torch.no_grad():
        fused = mertens(exposures)
    expected = _autograd_blend(exposures, mertens_weights(exposures), None, None, 0).clamp(0, 1)
    torch.testing.assert_close(fused, expected, atol=1e-6, rtol=0)
    assert len(strips) > 1


@pytest.mark.parametrize("small, full", [((10, 13), (37, 51)), ((20, 30), (41, 59)), ((7, 5), (7, 5)), ((34, 51), (400, 600))])
def test_guided_rows_equal_the_whole_guided_upsample(small, full):
    """guided_rows, strip by strip (odd strip heights too), equals guided_upsample of the whole map (1e-4)."""
    generator = torch.Generator().manual_seed(full[0])
    maps = 3 * torch.randn(1, 2, *small, generator=generator)
    guide_small, guide = torch.rand(1, 2, *small, generator=generator), torch.rand(1, 2, *full, generator=generator)
    expected = guided_upsample(maps, guide_small, guide)
    a, b = guided_coefficients(maps, guide_small)
    for step in (1, 7, 64):
        rows = [guided_rows(a, b, guide[..., top : top + step, :], top, full[0]) for top in range(0, full[0], step)]
        torch.testing.assert_close(torch.cat(rows, dim=-2), expected, atol=1e-4, rtol=0, msg=f"strips of {step}")


def test_fast_path_in_strips_equals_whole_logits(strips):
    """fuse_at_work_size (logits upsampled per strip) equals upsampling them whole and blending (1e-5)."""
    model = _student(perturb=0.5, prior_shift=-0.25)
    exposures = _smooth_exposures()
    with torch.no_grad():
        fused = fuse_at_work_size(model, exposures, "rgb", 32)
        small = F.interpolate(exposures.flatten(0, 1), size=(24, 32), mode="bilinear", antialias=True, align_corners=False)
        small = small.clamp(0, 1).unflatten(0, (1, 2))
        logits = model(student_input(small, "rgb"))
        full_logits = guided_upsample(logits, luma(small), luma(exposures))
    expected = model.fuse(exposures.clone().requires_grad_(True), full_logits).detach()
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=0)
    assert len(strips) > 1


# --- reading photos into their slots -------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3),
        np.arange(5 * 7, dtype=np.uint8).reshape(5, 7),
        (np.arange(5 * 7 * 3, dtype=np.uint16).reshape(5, 7, 3) * 300),
    ],
    ids=["rgb8", "grey8", "rgb16"],
)
def test_pixels_are_converted_into_the_given_slot(array, tmp_path):
    """pixels_to_tensor writes into ``out`` exactly what it returns without one."""
    alone = pixels_to_tensor(array, tmp_path / "x.png")
    slot = torch.full((2, 3, 5, 7), -1.0)
    returned = pixels_to_tensor(array, tmp_path / "x.png", out=slot[1])
    assert returned.data_ptr() == slot[1].data_ptr()
    torch.testing.assert_close(slot[1], alone, atol=0, rtol=0)
    assert torch.equal(slot[0], torch.full((3, 5, 7), -1.0))


def test_read_stack_decodes_every_file_in_order(tmp_path):
    """The parallel reader gives each file's pixels in its slot, in the order given."""
    generator = torch.Generator().manual_seed(2)
    paths = []
    for k in range(4):
        path = tmp_path / f"e{k}.png"
        write_image(path, torch.rand(3, 19, 23, generator=generator))
        paths.append(path)
    exposures = read_stack(paths)
    assert exposures.shape == (1, 4, 3, 19, 23)
    for k, path in enumerate(paths):
        assert torch.equal(exposures[0, k], read_image(path))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_strips_on_cuda_equal_the_cpu(monkeypatch):
    """On a GPU the strips are taller (fewer launches) and give what the CPU gives (to 1e-5)."""
    monkeypatch.setattr(laplacian_blend, "AT_ONCE_VALUES", 0)
    monkeypatch.setattr(laplacian_blend, "GPU_STRIP_ROWS", 16)
    monkeypatch.setattr(laplacian_blend, "STRIP_ROWS", TINY_STRIP)
    exposures, weights, coarse = random_bracket(n=1, k=2, h=83, w=57, seed=4)
    with torch.no_grad():
        on_cpu = pyramid_blend(exposures, weights, None, coarse, 2)
        on_gpu = pyramid_blend(exposures.cuda(), weights.cuda(), None, coarse.cuda(), 2)
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=0)
