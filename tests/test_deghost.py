"""Deghosting (``fusionkit.inference.deghost``): static brackets pass through untouched, an object pasted at a
different place in each exposure of a real bracket shows once after Mertens fusion, and the static rest
keeps its MEF-SSIM. Figures print with ``pytest -s``."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusionkit.colour import luma
from fusionkit.data.io import read_image
from fusionkit.errors import FusionkitError, message_template, param
from fusionkit.evaluation.mef_ssim import mef_ssim_rgb
from fusionkit.inference.deghost import deghost
from fusionkit.inference.fuser import Fuser
from tests.real_data import bracket, shared

OBJECT = 64
#: Scenes of brackets/test, the reference deghost picks, and where the object goes (top-left corner as
#: fractions of height and width) in the darkest, middle and brightest exposure: places the reference exposes well.
SCENES = {
    "pmef1-devil-s-tower": (1, [(0.20, 0.15), (0.62, 0.42), (0.55, 0.78)]),
    "pmef2-seq-26": (2, [(0.65, 0.05), (0.62, 0.45), (0.05, 0.75)]),
    "pmef3-knossos2": (1, [(0.10, 0.05), (0.45, 0.45), (0.70, 0.80)]),
}


@cache
def the_object() -> torch.Tensor:
    """A busy photograph (Kodak's motocross riders), OBJECT pixels square: (3, OBJECT, OBJECT)."""
    photo = read_image(shared("photos/kodak24/kodim05.jpg"))
    side = min(photo.shape[-2:])
    return F.interpolate(photo[None, :, :side, :side], size=(OBJECT, OBJECT), mode="area")[0]


def as_exposed(patch: torch.Tensor, middle: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
    """``patch`` as the middle exposure shows it, in ``exposure``'s tones: each channel through the curve
    matching the middle exposure's histogram to that exposure's."""
    levels = np.linspace(0, 1, 257)
    return torch.stack([
        torch.from_numpy(np.interp(p.numpy(), np.quantile(m.numpy(), levels), np.quantile(e.numpy(), levels))).float()
        for p, m, e in zip(patch, middle, exposure)
    ])


def box(exposures: torch.Tensor, place: tuple[float, float]) -> tuple[slice, slice]:
    top, left = (round(f * n) for f, n in zip(place, exposures.shape[-2:]))
    return slice(top, top + OBJECT), slice(left, left + OBJECT)


def pasted(exposures: torch.Tensor, places: list[tuple[float, float] | None]) -> torch.Tensor:
    """``exposures`` (1, K, 3, H, W) with the object, exposed as each exposure, at its place (None: not in that one)."""
    out = exposures.clone()
    middle = exposures[0, exposures.shape[1] // 2]
    for k, place in enumerate(places):
        if place is not None:
            rows, cols = box(exposures, place)
            out[0, k, :, rows, cols] = as_exposed(the_object(), middle, exposures[0, k])
    return out


@cache
def fusions(scene: str) -> dict:
    """Mertens fusions of ``scene``: the static bracket, the one with the moving object plainly and deghosted,
    and the object standing still at each place (how it looks when it shows fully)."""
    mertens = Fuser.from_method("mertens")
    static = bracket(scene)
    places = SCENES[scene][1]
    moving = pasted(static, places)
    return {
        "static": mertens(static), "plain": mertens(moving), "deghosted": mertens(deghost(moving).exposures),
        "still": [mertens(pasted(static, [place] * len(places))) for place in places],
    }


def presence(fused: torch.Tensor, static: torch.Tensor, still: torch.Tensor) -> float:
    """How much of the object ``fused`` shows in its box: 1 as when it stands still, 0 as with no object."""
    change, full = (fused - static).flatten(), (still - static).flatten()
    return float(change @ full / (full @ full))


@pytest.mark.parametrize("scene", SCENES)
def test_a_static_bracket_passes_through_untouched(scene):
    exposures = bracket(scene)
    result = deghost(exposures)
    masked = (result.masks > 0).float().mean().item()
    print(f"{scene}: reference {result.reference}, {masked:.4%} of the exposures' pixels masked")
    assert result.reference == SCENES[scene][0] and masked < 0.001
    untouched = (result.masks == 0)[None, :, None].expand_as(exposures)
    assert torch.equal(result.exposures[untouched], exposures[untouched])


@pytest.mark.parametrize("scene", SCENES)
def test_a_moving_object_shows_once(scene):
    """At the reference's place the object shows (as when it stands still); at the others' it is gone, close to the
    static fusion there, where plain fusion shows a ghost."""
    reference, places = SCENES[scene]
    runs = fusions(scene)
    static = runs["static"]
    for k, place in enumerate(places):
        where = (Ellipsis,) + box(static, place)
        shown = {name: presence(runs[name][where], static[where], runs["still"][k][where]) for name in ("plain", "deghosted")}
        error = {name: (runs[name][where] - static[where]).abs().mean().item() for name in ("plain", "deghosted")}
        line = (f"{scene} exposure {k}: object shown plain {shown['plain']:.3f}, deghosted {shown['deghosted']:.3f}; "
                f"mean |fused - static| plain {error['plain']:.4f}, deghosted {error['deghosted']:.4f}")
        if k == reference:
            as_pasted = pasted(bracket(scene), places)[0, k][where]
            correlation = np.corrcoef(luma(runs["deghosted"][where]).flatten(), luma(as_pasted).flatten())[0, 1]
            print(f"{line}; reference, correlation with its object {correlation:.3f}")
            assert shown["deghosted"] > 0.85 and correlation > 0.85
        else:
            print(line)
            assert shown["plain"] > 0.1 and abs(shown["deghosted"]) < 0.05
            assert error["deghosted"] < 0.02 and error["deghosted"] < error["plain"] / 2


@pytest.mark.parametrize("scene", SCENES)
def test_the_static_part_keeps_its_mef_ssim(scene):
    """Scored against the static bracket with the objects' boxes taken from the static fusion in both."""
    runs = fusions(scene)
    static = runs["static"]
    scores = {}
    for name in ("static", "plain", "deghosted"):
        fused = runs[name].clone()
        for place in SCENES[scene][1]:
            where = (Ellipsis,) + box(static, place)
            fused[where] = static[where]
        scores[name] = mef_ssim_rgb(fused, bracket(scene)).item()
    print(f"{scene}: MEF-SSIM outside the objects: static {scores['static']:.4f}, plain {scores['plain']:.4f}, "
          f"deghosted {scores['deghosted']:.4f}")
    assert abs(scores["deghosted"] - scores["static"]) < 0.002


def synthetic(squares: list[int | None]) -> torch.Tensor:
    """Three exposures (gains 0.4, 1, 2.5 under a gamma of 2.2) of a smooth random scene, each with a striped square
    (in tones the scene also has) at place ``squares[k]`` of three, or none: (1, 3, 3, 96, 128)."""
    generator = torch.Generator().manual_seed(0)
    radiance = 0.05 + 0.4 * F.interpolate(torch.rand(1, 3, 12, 16, generator=generator), size=(96, 128), mode="bicubic").clamp(0, 1)
    exposures = []
    for square, gain in zip(squares, (0.4, 1.0, 2.5)):
        scene = radiance[0].clone()
        if square is not None:
            scene[:, square_at(square)[0], square_at(square)[1]] = torch.tensor([0.15, 0.35])[torch.arange(16) // 4 % 2]
        exposures.append((scene * gain).clamp(0, 1) ** (1 / 2.2))
    return torch.stack(exposures)[None]


def square_at(place: int) -> tuple[slice, slice]:
    return slice(16 + 24 * place, 32 + 24 * place), slice(16 + 40 * place, 32 + 40 * place)


def test_synthetic_brackets_without_and_with_motion():
    """Static: untouched. Moving: each exposure shows the square where the reference has it, and only there."""
    still = synthetic([None] * 3)
    result = deghost(still)
    assert result.reference == 1 and not result.masks.any() and torch.equal(result.exposures, still)
    result = deghost(synthetic([0, 1, 2]), reference=0)
    expected = synthetic([0, 0, 0])
    assert result.reference == 0 and not result.masks[0].any()
    for place in range(3):
        where = (Ellipsis,) + square_at(place)
        assert (result.exposures[where] - expected[where]).abs().mean() < 0.005
    assert (result.exposures - expected).abs().mean() < 0.001


@pytest.mark.parametrize(
    ("options", "name"), [({"reference": 3}, "reference"), ({"threshold": 0}, "threshold"), ({"work_size": 8}, "work_size")]
)
def test_errors_name_the_parameter(options, name):
    with pytest.raises(FusionkitError) as caught:
        deghost(synthetic([None] * 3), **options)
    assert param(name) in message_template(caught.value)
