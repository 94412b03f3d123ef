"""Training-free methods (plugin fusionkit_classic): Mertens parity with OpenCV, mean, the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
import torch

import fusionkit
from fusionkit.errors import ComponentOptionError, FusionkitError
from fusionkit.evaluation.metrics import psnr

try:
    import cv2
except ImportError:  # opencv-python-headless comes with the dev extra
    cv2 = None

needs_opencv = pytest.mark.skipif(cv2 is None, reason="needs opencv-python-headless (the dev extra)")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as float64 HxWx3 in [0, 1], subsampled to at most 256 px a side."""
    image = getattr(skimage.data, name)()
    step = math.ceil(max(image.shape[:2]) / 256)
    return image[::step, ::step].astype(np.float64) / 255


def bracket(image: np.ndarray, stops: tuple[float, ...]) -> list[np.ndarray]:
    """A toy 8-bit camera: linearise (gamma 2.2), scale by 2**stop, clip, re-encode; one uint8 shot per stop."""
    return [np.round(np.clip(image**2.2 * 2.0**stop, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8) for stop in stops]


def stack(shots: list[np.ndarray]) -> torch.Tensor:
    """K uint8 HxWx3 shots -> exposures (1, K, 3, H, W) in [0, 1].

    Scaled by float32(1/255) exactly as OpenCV converts them, so both sides see identical pixels:
    on grey pixels the last bit decides whether saturation, hence the weight, is exactly zero.
    """
    scaled = np.stack(shots).astype(np.float32) * np.float32(1 / 255)
    return torch.from_numpy(scaled).permute(0, 3, 1, 2)[None]


def opencv_mertens(shots: list[np.ndarray], contrast=1.0, saturation=1.0, exposedness=0.0) -> torch.Tensor:
    """cv2.createMergeMertens on the uint8 shots, clipped to [0, 1] (OpenCV leaves it unclipped)."""
    fused = cv2.createMergeMertens(contrast, saturation, exposedness).process(shots)
    return torch.from_numpy(np.clip(fused, 0, 1)).permute(2, 0, 1)[None]


def method(name: str, **options):
    return fusionkit.create("method", name, **options)


def test_methods_are_registered_by_the_fusionkit_distribution():
    found = {c.name: c for c in fusionkit.available("method")}
    assert {"mertens", "mean", "best_input"} <= set(found)
    for name in ("mertens", "mean", "best_input"):
        assert found[name].plugin == "fusionkit"
        assert found[name].entry_point == "classic"
        assert found[name].summary
    assert [method(n).needs_reference for n in ("mertens", "mean", "best_input")] == [False, False, True]


@pytest.mark.parametrize(
    "name, crop, stops, options",
    [
        ("astronaut", None, (-2, 1), {}),
        ("coffee", None, (-2, 0, 2), {}),
        ("chelsea", (97, 131), (-2, 0, 2), {"exposedness": 1.0}),
        ("astronaut", (97, 131), (-1.5, 1), {"contrast": 0.5, "saturation": 2.0, "exposedness": 1.0}),
        ("coffee", (64, 64), (-2, 0, 2), {"exposedness": 1.0}),
    ],
)
@needs_opencv
def test_mertens_matches_opencv(name, crop, stops, options):
    image = photo(name)
    if crop is not None:
        image = image[: crop[0], : crop[1]]
    shots = bracket(image, stops)
    fused = method(
        "mertens",
        contrast_weight=options.get("contrast", 1.0),
        saturation_weight=options.get("saturation", 1.0),
        exposedness_weight=options.get("exposedness", 0.0),
    )(stack(shots))
    assert fused.shape == (1, 3, *image.shape[:2])
    assert fused.min() >= 0 and fused.max() <= 1
    assert psnr(fused, opencv_mertens(shots, **options)).item() >= 60  # measured: 89 dB and up


def test_mertens_fuses_a_batch_image_by_image():
    shots = [bracket(photo(name)[:64, :96], (-2, 0, 2)) for name in ("astronaut", "chelsea")]
    exposures = torch.cat([stack(s) for s in shots])
    mertens = method("mertens", exposedness_weight=1.0)
    batched = mertens(exposures)
    torch.testing.assert_close(batched, torch.cat([mertens(exposures[i : i + 1]) for i in range(2)]))


def test_mertens_takes_one_exposure_and_explicit_levels():
    exposures = stack(bracket(photo("chelsea")[:40, :50], (0,)))
    out = method("mertens", levels=2)(exposures)
    torch.testing.assert_close(out, exposures[:, 0], atol=1e-5, rtol=0)
    assert method("mertens", levels=0)(exposures).shape == (1, 3, 40, 50)


def test_mertens_keeps_half_precision_inputs_in_their_dtype():
    exposures = stack(bracket(photo("coffee")[:48, :48], (-1, 1)))
    out = method("mertens")(exposures.bfloat16())
    assert out.dtype == torch.bfloat16
    assert psnr(out.float(), method("mertens")(exposures)).item() > 35


def test_mean_averages_the_exposures():
    exposures = torch.rand(2, 3, 3, 8, 9)
    torch.testing.assert_close(method("mean")(exposures), exposures.mean(dim=1))


def test_best_input_picks_the_exposure_closest_to_the_reference():
    reference = torch.rand(2, 3, 16, 16)
    near = (reference + 0.01).clamp(0, 1)
    far = (reference + 0.3).clamp(0, 1)
    middle = (reference - 0.1).clamp(0, 1)
    exposures = torch.stack(
        [torch.stack([far[0], near[0], middle[0]]), torch.stack([middle[1], far[1], near[1]])]
    )
    oracle = method("best_input")
    out = oracle(exposures, reference)
    torch.testing.assert_close(out, torch.stack([near[0], near[1]]))


@pytest.mark.parametrize(
    "call",
    [
        lambda: method("best_input")(torch.rand(1, 2, 3, 8, 8)),
        lambda: method("best_input")(torch.rand(1, 2, 3, 8, 8), torch.rand(1, 3, 8, 9)),
        lambda: method("mertens")(torch.rand(1, 3, 8, 8)),
        lambda: method("mean")(torch.rand(1, 2, 4, 8, 8)),
        lambda: method("mertens")(torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8)),
    ],
    ids=["oracle-without-reference", "reference-shape", "not-5d", "not-rgb", "not-float"],
)
def test_user_mistakes_raise_one_line_fusionkit_errors(call):
    with pytest.raises(FusionkitError) as info:
        call()
    assert "\n" not in str(info.value)


def test_bad_options_are_rejected():
    with pytest.raises(ComponentOptionError):
        method("mertens", levels=-1)
    with pytest.raises(ComponentOptionError):
        method("mertens", sigma=0.3)


@needs_opencv
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mertens_runs_on_the_gpu():
    shots = bracket(photo("astronaut"), (-2, 0, 2))
    fused = method("mertens")(stack(shots).cuda())
    assert fused.is_cuda
    assert psnr(fused.cpu(), opencv_mertens(shots)).item() >= 50
