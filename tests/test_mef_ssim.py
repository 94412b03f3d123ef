"""MEF-SSIM: parity with the authors' MATLAB ``mef_ms_ssim`` on real brackets, batching, exposure order,
the identity case and gradients for training."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusionkit.evaluation.mef_ssim import matlab_rgb2gray, mef_ssim, mef_ssim_rgb

SHARED = Path(os.environ.get("FUSIONKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REFERENCE = SHARED / "mefssim-reference"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These images are small: one thread is as fast, and immune to OpenMP stalls on a busy shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference_rows() -> list:
    """(fused, MATLAB score, inputs) per row of scores.tsv, or one skipped case when the data is absent."""
    table = REFERENCE / "scores.tsv"
    if not table.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"reference data folder not found: {REFERENCE}"))]
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:] if line.strip()]
    return [pytest.param((r[0], float(r[1]), r[2:]), id=r[0].removesuffix(".png")) for r in rows]


def load_rgb(relative: str) -> torch.Tensor:
    """An 8-bit PNG of the reference folder as a float64 (3, H, W) tensor in [0, 1]."""
    return torch.from_numpy(iio.imread(REFERENCE / relative)[..., :3]).permute(2, 0, 1).double() / 255


def bracket(n: int, k: int, size: int = 64, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic gray brackets (N, K, 1, S, S) on integer levels, each a smooth scene shot at K exposures,
    and a plausible fused image (N, 1, S, S): the mean of the bracket plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    scene = F.interpolate(torch.rand(n, 1, size // 8, size // 8, generator=g), size=(size, size), mode="bicubic")
    scene = scene.clamp(0, 1) + 0.05 * torch.rand(n, 1, size, size, generator=g)
    gains = torch.tensor([0.5, 1.5, 4.0, 8.0])[:k].view(1, k, 1, 1, 1)
    exposures = (scene.unsqueeze(1) * gains * 255).clamp(0, 255).round()
    fused = (exposures.mean(1) + 4 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 255).round()
    return fused.to(dtype), exposures.to(dtype)


@pytest.mark.parametrize("row", reference_rows())
def test_matches_matlab_reference(row):
    fused, expected, inputs = row
    score = mef_ssim_rgb(load_rgb(fused)[None], torch.stack([load_rgb(p) for p in inputs])[None])
    assert score.dtype == torch.float64
    assert score.item() == pytest.approx(expected, abs=1e-4)


def test_matlab_rgb2gray_levels():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.25, 0.75]])
    gray = matlab_rgb2gray(rgb.double().view(5, 3, 1, 1)).flatten()
    # round(0.298936021293775 * R + 0.587043074451121 * G + 0.114020904255103 * B) on the uint8 levels,
    # e.g. (128, 64, 191) -> 97.61 -> 98
    assert gray.tolist() == [255, 76, 150, 29, 98]


def test_batched_equals_per_image():
    fused, exposures = bracket(3, 3)
    batched = mef_ssim(fused, exposures)
    single = torch.cat([mef_ssim(fused[i : i + 1], exposures[i : i + 1]) for i in range(3)])
    assert batched.shape == (3,)
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-12)


def test_invariant_to_exposure_order():
    fused, exposures = bracket(2, 3, seed=1)
    reordered = mef_ssim(fused, exposures[:, [2, 0, 1]])
    torch.testing.assert_close(mef_ssim(fused, exposures), reordered, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_identical_exposures_score_one(k):
    _, exposures = bracket(2, 1, seed=2)
    score = mef_ssim(exposures[:, 0], exposures.expand(-1, k, -1, -1, -1))
    assert torch.all(score > 0.9999) and torch.all(score <= 1)


@pytest.mark.parametrize("k", [2, 3])
def test_gradient_finite_and_nonzero(k):
    fused, exposures = bracket(2, k, size=48, seed=3, dtype=torch.float32)
    exposures[:, 0, :, :16, :16] = 255.0  # saturated patch: zero variance in one exposure
    fused.requires_grad_(True)
    score = mef_ssim(fused, exposures)
    assert score.dtype == torch.float32 and torch.all((score > 0) & (score <= 1))
    (1 - score).sum().backward()
    assert torch.isfinite(fused.grad).all()
    assert np.count_nonzero(fused.grad.numpy()) > fused.numel() // 2


def test_strips_of_rows_score_as_the_whole_image(monkeypatch):
    """Large images are scored strip by strip to bound memory; the score is the whole image's."""
    import fusionkit.evaluation.fusion_metrics as module

    torch.manual_seed(3)
    exposures = torch.rand(2, 3, 3, 97, 70, dtype=torch.float64)
    fused = exposures.mean(1)
    whole = mef_ssim_rgb(fused, exposures)
    monkeypatch.setattr(module, "STRIP_PIXELS", 70 * 3 * 5)  # strips of 5 rows, the last one shorter
    assert torch.allclose(mef_ssim_rgb(fused, exposures), whole, rtol=0, atol=1e-13)
