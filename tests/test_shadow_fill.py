"""The shadow fill: what the brightest exposure shows is not left black, with its detail, and nothing else moves."""

from __future__ import annotations

import pytest
import torch

import fusionkit
from fusionkit.api import ComponentOptionError, WeightBlend
from fusionkit.evaluation.fusion_metrics import crushed_shadows
from fusionkit.models.laplacian_blend import STRIP_ROWS
from fusionkit.models.shadow_fill import ShadowFill


def crushed_bracket(height: int = 64, width: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """A dark and a bright exposure (1, 2, 3, H, W) with a textured shadow the bright one shows at about 30 %,
    and a fusion (1, 3, H, W) that leaves that shadow black and the rest mid-grey."""
    generator = torch.Generator().manual_seed(0)
    texture = 0.1 * torch.rand(1, 1, height, width, generator=generator)
    bright = torch.full((1, 3, height, width), 0.7)
    bright[..., 20:40, 10:30] = 0.25 + texture[..., 20:40, 10:30]
    dark = bright * 0.1
    fused = torch.full((1, 3, height, width), 0.5)
    fused[..., 20:40, 10:30] = 0.005
    return torch.stack([dark, bright], 1), fused


def test_fill_lifts_crushed_shadows_with_the_bright_exposures_detail():
    exposures, fused = crushed_bracket()
    filled = ShadowFill()(fused.clone(), exposures)
    assert crushed_shadows(fused, exposures).item() == pytest.approx(400 / (64 * 48))
    assert crushed_shadows(filled, exposures).item() == 0
    luma = filled.mean(1)[0, 22:38, 12:28]  # grey pixels: luma is the mean
    assert luma.min() >= 0.05 * 0.99  # at least the floor: 30 % of what the bright exposure shows, at most 5 %
    shadow = exposures[0, 1, 0, 22:38, 12:28]
    assert torch.corrcoef(torch.stack([luma.flatten(), shadow.flatten()]))[0, 1] > 0.9  # its detail, not a flat grey


def test_fill_leaves_pixels_far_from_any_shortfall_alone():
    exposures, fused = crushed_bracket()
    fill = ShadowFill()
    filled = fill(fused.clone(), exposures)
    far = torch.ones(64, 48, dtype=torch.bool)
    far[20 - fill.reach : 40 + fill.reach, 10 - fill.reach : 30 + fill.reach] = False
    assert torch.equal(filled[..., far], fused[..., far])
    assert torch.equal(fill(exposures[:, 1].clone(), exposures), exposures[:, 1])  # the bright exposure itself needs no fill


def test_fill_in_strips_equals_the_whole_image_and_has_gradients():
    exposures, fused = crushed_bracket(height=2 * STRIP_ROWS + 40)
    fused[..., STRIP_ROWS - 6 : STRIP_ROWS + 6, :] = 0.0  # a shortfall across a strip boundary
    fill = ShadowFill()
    strips = fill(fused.clone(), exposures)
    tracked = fused.clone().requires_grad_(True)
    whole = fill(tracked, exposures)
    torch.testing.assert_close(strips, whole.detach(), atol=1e-6, rtol=0)
    whole.sum().backward()
    assert tracked.grad is not None and torch.isfinite(tracked.grad).all()


def test_options_are_checked():
    with pytest.raises(ComponentOptionError, match="floor and cap"):
        ShadowFill(cap=0)
    with pytest.raises(ComponentOptionError, match="radius"):
        ShadowFill(radius=-1)
    with pytest.raises(ComponentOptionError, match="shadow_fill must be true or false"):
        WeightBlend(shadow_fill="yes")


def test_a_student_with_the_fill_fuses_without_crushing():
    exposures = sky_and_shade()
    dark_everywhere = torch.zeros(1, 2, 64, 64).index_fill_(1, torch.tensor([1]), -30.0)
    fused = {}
    for fill in (False, True):
        student = fusionkit.create("student", "se_strip", num_inputs=None, width=8, fine_levels=None, shadow_fill=fill).eval()
        with torch.no_grad():
            fused[fill] = student.fuse(exposures, dark_everywhere)
    assert crushed_shadows(fused[False], exposures).item() == 0.5 and crushed_shadows(fused[True], exposures).item() == 0


def sky_and_shade(size: int = 64) -> torch.Tensor:
    """A bracket (1, 2, 3, H, W) that Mertens crushes: on the left a sky the dark exposure shows and the bright one
    saturates, on the right a textured shade only the bright one shows; its base there comes partly from the dark one."""
    texture = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    bright, dark = torch.ones(1, 3, size, size), (0.4 + 0.2 * texture).expand(1, 3, size, size).clone()
    bright[..., size // 2 :] = 0.15 + 0.3 * texture[..., size // 2 :]
    dark[..., size // 2 :] = 0.01
    return torch.stack([dark, bright], 1)


def test_mertens_with_the_fill_keeps_the_shade_and_changes_nothing_else():
    exposures = sky_and_shade()
    plain = fusionkit.create("method", "mertens")(exposures)
    filled = fusionkit.create("method", "mertens", shadow_fill=True)(exposures)
    assert crushed_shadows(plain, exposures).item() > 0.02 and crushed_shadows(filled, exposures).item() == 0
    fill = ShadowFill()
    shortfall = ShadowFill(radius=0, sigma=0).fraction(plain, exposures[:, 1]) > 0
    near = torch.nn.functional.max_pool2d(shortfall.float(), 2 * fill.reach + 1, stride=1, padding=fill.reach)[0, 0] > 0
    changed = (filled - plain).abs().amax(1)[0] > 0
    assert changed.any() and not (changed & ~near).any()
    with pytest.raises(ComponentOptionError, match="shadow_fill"):
        fusionkit.create("method", "mertens", shadow_fill=1)
