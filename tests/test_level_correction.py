"""Per-level corrections of a blend's learned weights (``LevelCorrection``): what fuse-time refinement hands the blend.

Every schedule of the Laplacian blend (all exposures at once, strip by strip, with gradients) must apply them alike.
"""

from __future__ import annotations

import pytest
import torch

import fusionkit
from fusionkit.models import laplacian_blend
from fusionkit.models.laplacian_blend import corrected_blend, level_sizes, pyramid_blend, pyramid_levels
from tests.random_brackets import random_bracket

CASES = [
    pytest.param(None, False, 0, id="plain"),
    pytest.param(2, False, 0, id="levels-2"),
    pytest.param(0, False, 0, id="levels-0"),
    pytest.param(None, True, 1, id="coarse-fine1"),
    pytest.param(None, True, 3, id="coarse-fine3"),
    pytest.param(None, True, 20, id="coarse-fine-all"),
]


def random_correction(n: int, k: int, size: tuple[int, int], seed: int = 3):
    """A correction with random logits at every level of a pyramid of ``size``, and the calls it answered."""
    generator = torch.Generator().manual_seed(seed)
    maps = [torch.randn(n, k, 1, *s, generator=generator) for s in level_sizes(size, pyramid_levels(*size) + 1)]
    calls: list[tuple[int, int, int]] = []

    def correction(level, top, bottom):
        calls.append((level, top, bottom))
        return maps[level][..., top:bottom, :]

    return correction, calls


def blend(exposures, weights, coarse, levels, fine_levels, correction):
    return pyramid_blend(exposures, weights, levels, coarse, fine_levels, correction)


@pytest.mark.parametrize("size", [(37, 29), (64, 50), (17, 90)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("levels, with_coarse, fine_levels", CASES)
def test_every_schedule_applies_a_correction_alike(monkeypatch, size, levels, with_coarse, fine_levels):
    """At once, in 8-row strips and with gradients: the same corrected blend (to 1e-5), and gradients reach the logits."""
    exposures, weights, coarse = random_bracket(n=2, h=size[0], w=size[1], seed=size[1])
    coarse = coarse if with_coarse else None
    correction, calls = random_correction(2, 3, size)
    with torch.no_grad():
        at_once = blend(exposures, weights, coarse, levels, fine_levels, correction)
        plain = blend(exposures, weights, coarse, levels, fine_levels, None)
        monkeypatch.setattr(laplacian_blend, "AT_ONCE_VALUES", 0)
        monkeypatch.setattr(laplacian_blend, "STRIP_ROWS", 8)
        in_strips = blend(exposures, weights, coarse, levels, fine_levels, correction)
    tracked_weights = weights.clone().requires_grad_(True)
    tracked = blend(exposures, tracked_weights, coarse, levels, fine_levels, correction)
    torch.testing.assert_close(in_strips, at_once, atol=1e-5, rtol=0)
    torch.testing.assert_close(tracked.detach(), at_once, atol=1e-5, rtol=0)
    assert (at_once - plain).abs().max() > 1e-3, "the correction changed nothing"
    learned = {level for level, *_ in calls}
    assert learned == set(range(min(fine_levels, (levels if levels is not None else pyramid_levels(*size)) + 1))) if with_coarse else learned
    tracked.sum().backward()
    assert torch.isfinite(tracked_weights.grad).all() and tracked_weights.grad.abs().sum() > 0


def test_a_zero_correction_changes_nothing():
    exposures, weights, coarse = random_bracket(n=1, h=40, w=33, seed=5)
    zero = lambda level, top, bottom: torch.zeros(1, 3, 1, bottom - top, level_sizes((40, 33), level + 1)[-1][1])  # noqa: E731
    with torch.no_grad():
        for fine_levels, kept in ((0, None), (2, coarse)):
            torch.testing.assert_close(
                pyramid_blend(exposures, weights, None, kept, fine_levels, zero), pyramid_blend(exposures, weights, None, kept, fine_levels),
                atol=1e-6, rtol=0,
            )


def test_a_correction_that_picks_one_exposure_at_every_level_returns_it():
    """Each level corrected on its own: logits of +30 for one exposure everywhere rebuild that exposure's photo."""
    exposures, weights, _ = random_bracket(n=1, k=3, h=30, w=44, seed=6)
    sizes = level_sizes((30, 44), pyramid_levels(30, 44) + 1)

    def pick_second(level, top, bottom):
        logits = torch.zeros(1, 3, 1, bottom - top, sizes[level][1])
        logits[:, 1] = 30.0
        return logits

    with torch.no_grad():
        fused = pyramid_blend(exposures, weights, correction=pick_second)
    torch.testing.assert_close(fused, exposures[:, 1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_coarse, fine_levels", [(False, 0), (True, 2)])
def test_corrected_blend_made_once_equals_the_blend_for_any_correction(with_coarse, fine_levels):
    """``corrected_blend`` (bands made once, for an ascent) gives pyramid_blend's result for each correction it is given."""
    exposures, weights, coarse = random_bracket(n=1, h=33, w=40, seed=4)
    coarse = coarse if with_coarse else None
    blend_of = corrected_blend(exposures, weights, coarse, None, fine_levels)
    for seed in (1, 2):
        correction, _ = random_correction(1, 3, (33, 40), seed)
        with torch.no_grad():
            expected = pyramid_blend(exposures, weights, None, coarse, fine_levels, correction)
        torch.testing.assert_close(blend_of(correction), expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(blend_of(None), pyramid_blend(exposures, weights, None, coarse, fine_levels), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["tones", "qabf"])
def test_a_losss_targets_made_once_give_its_loss(name):
    """What ``mef_opt`` makes once per photo (``targets``) and scores each step against equals the loss itself."""
    exposures, _, _ = random_bracket(n=1, h=40, w=48, seed=2)
    fused = exposures.mean(dim=1)
    loss = fusionkit.create("loss", name)
    torch.testing.assert_close(loss.against(fused, *loss.targets(exposures)), loss(fused, exposures, None))
