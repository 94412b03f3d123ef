"""The fast pyramid filters match OpenCV on every small size, and the streaming blend is exact.

``pyr_down``, ``pyr_up`` and ``laplacian`` compute the interior from strided views and the borders
from small padded slices, with a separate padded path for short axes (``VIEWS_FROM``; every test
runs with the default and with views as early as they work) and when gradients flow; these
tests pin each path to OpenCV and to each other. ``pyramid_blend`` and ``WeightBlend.weights`` work
in place when no gradient is needed; the in-place and autograd-friendly paths must agree and must
never write into their inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionkit.models import laplacian_blend
from fusionkit.models.blend import WeightBlend, mertens_weights, pyramid_blend, pyramid_levels
from fusionkit.models import pyramid
from fusionkit.models.pyramid import laplacian, pyr_down, pyr_up
from tests.random_brackets import random_bracket

cv2 = pytest.importorskip("cv2")


@pytest.fixture(autouse=True, params=["views-from-default", "views-from-6"])
def views_from(request, monkeypatch):
    """Every test twice: short axes through the padded copy (the default), and through views as early as they work."""
    if request.param == "views-from-6":
        monkeypatch.setattr(pyramid, "VIEWS_FROM", 0)

#: Every side from 1 to 13 (both fast and padded paths, every parity) plus larger odd and even sides.
SIZES = list(range(1, 14)) + [32, 37]
TOL = 1e-5


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed * 1000 + h * 50 + w).random((h, w), dtype=np.float32)


def _up_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """The output sizes cv2.pyrUp accepts for an (h, w) input: 2n, or 2n - 1 per axis."""
    heights = sorted({2 * h, max(1, 2 * h - 1)})
    widths = sorted({2 * w, max(1, 2 * w - 1)})
    return [(hh, ww) for hh in heights for ww in widths]


# OpenCV 5 accepts every size here, 1-pixel axes included, so no combination is skipped. Should an
# OpenCV build reject one (older ones refuse some 1-pixel inputs with cv2.error), only that size is
# left out, via _cv2_or_none below: such a size has no reference to compare with, it is not a pass.
def _cv2_or_none(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except cv2.error:
        return None


@pytest.mark.parametrize("h", SIZES)
def test_pyr_down_matches_cv2_pyrdown_for_every_width(h):
    """pyr_down equals cv2.pyrDown (to 1e-5) for this height and every width in SIZES."""
    for w in SIZES:
        image = _image(h, w)
        expected = _cv2_or_none(cv2.pyrDown, image)
        if expected is None:
            continue
        expected = expected.reshape((h + 1) // 2, (w + 1) // 2)
        got = pyr_down(torch.from_numpy(image)).numpy()
        assert got.shape == expected.shape, (h, w)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=f"pyr_down {h}x{w}")


@pytest.mark.parametrize("h", SIZES)
def test_pyr_up_matches_cv2_pyrup_with_dstsize_for_every_width(h):
    """pyr_up to (2h or 2h-1, 2w or 2w-1) equals cv2.pyrUp(dstsize=...) (to 1e-5) for every width."""
    for w in SIZES:
        image = _image(h, w, seed=1)
        for out_h, out_w in _up_sizes(h, w):
            expected = _cv2_or_none(cv2.pyrUp, image, dstsize=(out_w, out_h))
            if expected is None:
                continue
            expected = expected.reshape(out_h, out_w)
            got = pyr_up(torch.from_numpy(image), (out_h, out_w)).numpy()
            assert got.shape == expected.shape, (h, w, out_h, out_w)
            np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=f"pyr_up {h}x{w} -> {out_h}x{out_w}")


@pytest.mark.parametrize("h", SIZES)
def test_laplacian_matches_cv2_laplacian_ksize1_reflect101_for_every_width(h):
    """laplacian equals cv2.Laplacian(CV_32F, ksize=1, BORDER_REFLECT_101) (to 1e-5) for every width."""
    for w in SIZES:
        image = _image(h, w, seed=2)
        expected = _cv2_or_none(cv2.Laplacian, image, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
        if expected is None:
            continue
        expected = expected.reshape(h, w)
        got = laplacian(torch.from_numpy(image)).numpy()
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=f"laplacian {h}x{w}")


def _three_filters(x: torch.Tensor) -> dict[str, torch.Tensor]:
    h, w = x.shape[-2:]
    return {
        "pyr_down": pyr_down(x),
        "pyr_up": pyr_up(x, (2 * h, 2 * w)),
        "pyr_up_odd": pyr_up(x, (max(1, 2 * h - 1), max(1, 2 * w - 1))),
        "laplacian": laplacian(x),
    }


@pytest.mark.parametrize("h", SIZES)
def test_gradient_path_gives_the_same_values_as_the_no_grad_path(h):
    """With requires_grad=True inputs (padded path) every filter returns the no-grad result (to 1e-6)."""
    for w in SIZES:
        x = torch.from_numpy(_image(h, w, seed=3))
        with torch.no_grad():
            plain = _three_filters(x)
        tracked = _three_filters(x.clone().requires_grad_(True))
        for name, value in tracked.items():
            assert value.requires_grad, name
            torch.testing.assert_close(value.detach(), plain[name], atol=1e-6, rtol=0, msg=f"{name} {h}x{w}")


def test_requires_grad_input_under_no_grad_uses_the_fast_path_and_agrees():
    """A requires_grad input inside torch.no_grad gives the same values as a plain input (to 1e-6)."""
    x = torch.from_numpy(_image(11, 14, seed=4))
    expected = _three_filters(x)
    with torch.no_grad():
        got = _three_filters(x.clone().requires_grad_(True))
    for name in expected:
        torch.testing.assert_close(got[name], expected[name].detach(), atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize(
    "name, function",
    [
        ("pyr_down", pyr_down),
        ("pyr_up_even", lambda x: pyr_up(x, (14, 18))),
        ("pyr_up_odd", lambda x: pyr_up(x, (13, 17))),
        ("laplacian", laplacian),
    ],
)
def test_gradients_flow_and_pass_gradcheck_in_float64(name, function):
    """Each filter is differentiable: torch.autograd.gradcheck passes on a 7x9 float64 input."""
    x = torch.rand(1, 2, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(5), requires_grad=True)
    assert torch.autograd.gradcheck(function, (x,), eps=1e-6, atol=1e-7), name
    function(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, name


@pytest.mark.parametrize("h, w", [(11, 14), (6, 6), (5, 3), (2, 9), (1, 7), (33, 20)])
def test_batched_5d_input_equals_filtering_each_image(h, w):
    """(N, K, C, H, W) inputs give the same as filtering each (H, W) image on its own (to 1e-6)."""
    x = torch.rand(2, 3, 2, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    batched = _three_filters(x)
    for index in np.ndindex(*x.shape[:3]):
        single = _three_filters(x[index].contiguous())
        for name, value in batched.items():
            torch.testing.assert_close(value[index], single[name], atol=1e-6, rtol=0, msg=f"{name} {index}")


def test_filters_accept_non_contiguous_views():
    """A strided view (e.g. one exposure of a 5-D stack) filters the same as its contiguous copy."""
    stack = torch.rand(2, 2, 3, 19, 23, generator=torch.Generator().manual_seed(6))
    view = stack[:, 1]
    assert not view.is_contiguous()
    for name, value in _three_filters(view).items():
        torch.testing.assert_close(value, _three_filters(view.contiguous())[name], atol=0, rtol=0, msg=name)


# --- pyramid_blend and WeightBlend.weights -------------------------------------------------------


BLEND_CASES = [
    pytest.param({}, id="plain"),
    pytest.param({"levels": 0}, id="levels-0"),
    pytest.param({"levels": 2}, id="levels-2"),
    pytest.param({"coarse": True, "fine_levels": 0}, id="coarse-fine0"),
    pytest.param({"coarse": True, "fine_levels": 1}, id="coarse-fine1"),
    pytest.param({"coarse": True, "fine_levels": 2}, id="coarse-fine2"),
    pytest.param({"coarse": True, "fine_levels": 10}, id="coarse-fine-all"),
    pytest.param({"coarse": True, "fine_levels": 2, "levels": 0}, id="coarse-fine2-levels0"),
]


def _blend(exposures, weights, coarse, case):
    return pyramid_blend(
        exposures, weights, case.get("levels"), coarse if case.get("coarse") else None, case.get("fine_levels", 0)
    )


@pytest.mark.parametrize("case", BLEND_CASES)
def test_pyramid_blend_in_place_no_grad_equals_the_autograd_path(case):
    """pyramid_blend under torch.no_grad (in place) equals the grad-tracking path (to 1e-6)."""
    exposures, weights, coarse = random_bracket()
    with torch.no_grad():
        fast = _blend(exposures, weights, coarse, case)
    tracked_weights = weights.clone().requires_grad_(True)
    tracked_exposures = exposures.clone().requires_grad_(True)
    slow = _blend(tracked_exposures, tracked_weights, coarse, case)
    assert slow.requires_grad
    torch.testing.assert_close(slow.detach(), fast, atol=1e-6, rtol=0)
    slow.sum().backward()
    if case.get("coarse") and case.get("fine_levels") == 0:
        assert tracked_weights.grad is None  # fine_levels=0: every level uses the coarse weights
    else:
        assert tracked_weights.grad is not None and torch.isfinite(tracked_weights.grad).all()
    assert tracked_exposures.grad is not None and tracked_exposures.grad.abs().sum() > 0


@pytest.mark.parametrize("case", BLEND_CASES)
def test_pyramid_blend_does_not_modify_its_inputs(case):
    """pyramid_blend (no-grad, in-place path) leaves exposures, weights and coarse weights unchanged."""
    exposures, weights, coarse = random_bracket(n=2, k=2, h=17, w=12, seed=8)
    before = [t.clone() for t in (exposures, weights, coarse)]
    with torch.no_grad():
        _blend(exposures, weights, coarse, case)
    for name, tensor, original in zip(("exposures", "weights", "coarse"), (exposures, weights, coarse), before):
        assert torch.equal(tensor, original), f"{name} changed in place"


def test_pyramid_blend_with_equal_coarse_weights_equals_the_plain_blend():
    """coarse_weights equal to the weights give the plain blend whatever fine_levels is (to 1e-6)."""
    exposures, weights, _ = random_bracket(seed=9)
    with torch.no_grad():
        plain = pyramid_blend(exposures, weights)
        for fine_levels in (0, 1, 3):
            torch.testing.assert_close(pyramid_blend(exposures, weights, None, weights, fine_levels), plain, atol=1e-6, rtol=0)


def test_pyramid_blend_of_one_weight_map_per_exposure_reconstructs_the_image():
    """All weight on one exposure returns that exposure (Laplacian pyramid reconstruction, to 1e-5)."""
    exposures, _, _ = random_bracket(k=2, seed=10)
    weights = torch.zeros(1, 2, 1, *exposures.shape[-2:])
    weights[:, 1] = 1
    with torch.no_grad():
        fused = pyramid_blend(exposures, weights)
    torch.testing.assert_close(fused, exposures[:, 1], atol=1e-5, rtol=0)
    assert pyramid_levels(*exposures.shape[-2:]) == 4


@pytest.mark.parametrize("keep_balance", [False, True])
@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_weightblend_weights_no_grad_equals_softmax_of_logits_plus_log_prior(keep_balance, scale):
    """WeightBlend.weights without gradients equals softmax(logits + log prior) (to 1e-6) and sums to one."""
    generator = torch.Generator().manual_seed(11)
    exposures = torch.rand(2, 3, 3, 15, 19, generator=generator)
    logits = scale * torch.randn(2, 3, 15, 19, generator=generator)
    prior = mertens_weights(exposures)
    blend = WeightBlend(keep_balance=keep_balance)
    saved = [t.clone() for t in (exposures, logits, prior)]
    with torch.no_grad():
        weights = blend.weights(exposures, logits, prior)
    reference_logits = logits[:, :, None]
    if keep_balance:
        reference_logits = reference_logits - reference_logits.mean(dim=(-2, -1), keepdim=True)
    expected = torch.softmax(reference_logits + prior.log(), dim=1)
    assert weights.shape == (2, 3, 1, 15, 19)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 1, 15, 19), atol=1e-6, rtol=0)
    for name, tensor, original in zip(("exposures", "logits", "prior"), (exposures, logits, prior), saved):
        assert torch.equal(tensor, original), f"{name} changed in place"


def test_weightblend_weights_no_grad_equals_the_grad_path_and_computes_the_prior_itself():
    """The in-place path equals the autograd path, and prior=None uses Mertens' weights of the exposures."""
    generator = torch.Generator().manual_seed(12)
    exposures = torch.rand(1, 2, 3, 13, 16, generator=generator)
    logits = torch.randn(1, 2, 13, 16, generator=generator)
    blend = WeightBlend()
    with torch.no_grad():
        fast = blend.weights(exposures, logits)
        with_prior = blend.weights(exposures, logits, mertens_weights(exposures))
    tracked = logits.clone().requires_grad_(True)
    slow = blend.weights(exposures, tracked)
    assert slow.requires_grad
    torch.testing.assert_close(fast, with_prior, atol=0, rtol=0)
    torch.testing.assert_close(slow.detach(), fast, atol=1e-6, rtol=0)


def test_weightblend_forward_no_grad_equals_the_grad_path_and_keeps_inputs():
    """WeightBlend forward gives the same fused image with and without gradients and leaves its inputs unchanged."""
    generator = torch.Generator().manual_seed(13)
    exposures = torch.rand(1, 2, 3, 24, 20, generator=generator)
    logits = torch.randn(1, 2, 24, 20, generator=generator)
    saved = exposures.clone(), logits.clone()
    for blend in (WeightBlend(), WeightBlend(fine_levels=2), WeightBlend(mode="direct"), WeightBlend(prior="none")):
        with torch.no_grad():
            fast = blend(exposures, logits)
        slow = blend(exposures, logits.clone().requires_grad_(True))
        torch.testing.assert_close(slow.detach(), fast, atol=1e-6, rtol=0)
    assert torch.equal(exposures, saved[0]) and torch.equal(logits, saved[1])


@pytest.mark.parametrize("case", [pytest.param({}, id="plain"), pytest.param({"levels": 2}, id="levels-2")])
def test_small_brackets_at_once_equal_large_ones_schedule(case, monkeypatch):
    """Small brackets are weighed and blended all together; large ones one exposure and one strip at a time: same result."""
    exposures, weights, coarse = random_bracket(n=2, k=3, seed=11)
    with torch.no_grad():
        at_once = (mertens_weights(exposures), _blend(exposures, weights, coarse, case))
        monkeypatch.setattr(laplacian_blend, "AT_ONCE_VALUES", 0)
        streamed = (mertens_weights(exposures), _blend(exposures, weights, coarse, case))
    for fast, slow in zip(at_once, streamed):
        torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)


def test_pyramid_made_under_inference_mode_first_still_trains():
    """The padding indices are kept between calls: one made under inference mode must not break a backward."""
    x = torch.rand(1, 3, 9, 7)
    with torch.inference_mode():
        pyr_up(pyr_down(x), (9, 7))
    tracked = x.clone().requires_grad_(True)
    pyr_up(pyr_down(tracked), (9, 7)).sum().backward()
    assert tracked.grad is not None and torch.isfinite(tracked.grad).all()
