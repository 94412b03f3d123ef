"""PSNR / SSIM: parity with scikit-image on real photographs, batching, edge cases, the Y space,
and the ``psnr`` / ``ssim`` metric components the registry builds from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import fusionkit
from fusionkit.errors import FusionkitError
from fusionkit.evaluation.metrics import MetricInputError, psnr, ssim, to_space

PHOTOS = ("astronaut", "coffee", "chelsea")
BT601 = np.array([0.299, 0.587, 0.114])


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as float64 HxWx3 in [0, 1], subsampled to at most 256 px a side."""
    image = getattr(skimage.data, name)()
    step = math.ceil(max(image.shape[:2]) / 256)
    return image[::step, ::step].astype(np.float64) / 255


def degrade(image: np.ndarray, how: str) -> np.ndarray:
    if how == "noise":
        return np.clip(image + np.random.default_rng(0).normal(0, 0.05, image.shape), 0, 1)
    if how == "blur":
        return gaussian_filter(image, sigma=(1.5, 1.5, 0))
    return image**1.8  # gamma


def scores(fused: torch.Tensor, reference: torch.Tensor, space: str = "rgb") -> dict[str, torch.Tensor]:
    """The registered ``psnr`` and ``ssim`` metric components in ``space``, per image."""
    exposures = torch.stack([fused, reference], dim=1)
    return {name: fusionkit.create("metric", name, space=space)(fused, exposures, reference) for name in ("psnr", "ssim")}


def tensor(image: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """HxWxC (or HxW) array -> a (1, C, H, W) tensor."""
    array = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(dtype)


def skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    channel_axis = -1 if a.ndim == 3 else None
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=data_range, channel_axis=channel_axis,
    )


@pytest.mark.parametrize("how", ["noise", "blur", "gamma"])
@pytest.mark.parametrize("name", PHOTOS)
def test_ssim_and_psnr_match_scikit_image(name, how):
    clean = photo(name)
    dirty = degrade(clean, how)
    expected_ssim = skimage_ssim(clean, dirty)
    expected_psnr = peak_signal_noise_ratio(clean, dirty, data_range=1)
    assert ssim(tensor(dirty), tensor(clean)).item() == pytest.approx(expected_ssim, abs=1e-4)
    assert ssim(tensor(dirty, torch.float64), tensor(clean, torch.float64)).item() == pytest.approx(
        expected_ssim, abs=1e-10
    )
    assert psnr(tensor(dirty), tensor(clean)).item() == pytest.approx(expected_psnr, abs=1e-4)


def test_data_range_scales_with_the_images():
    clean = photo("chelsea")
    dirty = degrade(clean, "noise")
    assert ssim(tensor(dirty * 255), tensor(clean * 255), data_range=255).item() == pytest.approx(
        skimage_ssim(clean * 255, dirty * 255, data_range=255), abs=1e-4
    )
    assert psnr(tensor(dirty * 255), tensor(clean * 255), data_range=255).item() == pytest.approx(
        psnr(tensor(dirty), tensor(clean)).item(), abs=1e-4
    )


def test_metrics_are_per_image_over_a_batch():
    crops = [photo(name)[:128, :128] for name in PHOTOS]
    clean = torch.cat([tensor(crop) for crop in crops])
    dirty = torch.cat([tensor(degrade(crop, how)) for crop, how in zip(crops, ["noise", "blur", "gamma"])])
    for metric in (psnr, ssim):
        batched = metric(dirty, clean)
        assert batched.shape == (3,)
        singles = torch.cat([metric(dirty[i : i + 1], clean[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(batched, singles)
    assert psnr(dirty, clean)[1].item() != psnr(dirty, clean)[0].item()


def test_identical_images_score_100_db_and_ssim_one():
    image = tensor(photo("coffee"))
    assert psnr(image, image).item() == pytest.approx(100.0)
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(psnr(image, image.clone())).all()


def test_half_precision_inputs_are_measured_in_float32():
    clean, dirty = tensor(photo("astronaut")), tensor(degrade(photo("astronaut"), "blur"))
    result = ssim(dirty.bfloat16(), clean.bfloat16())
    assert result.dtype == torch.float32
    assert result.item() == pytest.approx(ssim(dirty, clean).item(), abs=1e-2)


def test_y_space_is_bt601_luma():
    clean = photo("chelsea")
    dirty = degrade(clean, "blur")
    luma = scores(tensor(dirty), tensor(clean), space="y")
    assert luma["ssim"].item() == pytest.approx(skimage_ssim(clean @ BT601, dirty @ BT601), abs=1e-4)
    expected_psnr = peak_signal_noise_ratio(clean @ BT601, dirty @ BT601, data_range=1)
    assert luma["psnr"].item() == pytest.approx(expected_psnr, abs=1e-3)
    assert to_space(tensor(clean), "y").shape == (1, 1, *clean.shape[:2])
    rgb = scores(tensor(dirty), tensor(clean))
    assert rgb["ssim"].item() == pytest.approx(skimage_ssim(clean, dirty), abs=1e-4)
    assert rgb["psnr"].item() == pytest.approx(peak_signal_noise_ratio(clean, dirty, data_range=1), abs=1e-4)


def test_every_registered_metric_says_how_to_read_it():
    for component in fusionkit.available("metric"):
        metric = fusionkit.create("metric", component.name)
        assert metric.name == component.name
        assert isinstance(metric.higher_is_better, bool) and isinstance(metric.needs_reference, bool)
    for name in ("psnr", "ssim"):
        metric = fusionkit.create("metric", name)
        assert metric.higher_is_better and metric.needs_reference


@pytest.mark.parametrize(
    "call",
    [
        lambda: psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17)),
        lambda: ssim(torch.rand(3, 16, 16), torch.rand(3, 16, 16)),
        lambda: ssim(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32)),
        lambda: scores(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), space="lab"),
        lambda: scores(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), space="y"),
        lambda: fusionkit.create("metric", "psnr")(torch.rand(1, 3, 16, 16), torch.rand(1, 2, 3, 16, 16)),
    ],
    ids=["shape-mismatch", "not-batched", "too-small-for-ssim", "unknown-space", "y-needs-rgb", "no-reference"],
)
def test_user_mistakes_raise_one_line_fusionkit_errors(call):
    with pytest.raises(MetricInputError) as info:
        call()
    assert isinstance(info.value, FusionkitError)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_run_on_the_gpu():
    clean = photo("coffee")
    dirty = degrade(clean, "noise")
    on_gpu = scores(tensor(dirty).cuda(), tensor(clean).cuda())
    assert on_gpu["ssim"].is_cuda
    assert on_gpu["ssim"].item() == pytest.approx(skimage_ssim(clean, dirty), abs=1e-4)
    assert on_gpu["psnr"].item() == pytest.approx(peak_signal_noise_ratio(clean, dirty, data_range=1), abs=1e-4)
