"""Aligning a handheld bracket (``align`` components and ``fusionkit.inference.align``): real brackets of
``brackets/test`` (darkest, middle and brightest exposure, long side 400) with the brightest exposure moved by a
known transform are aligned back, against the relative truth T_k @ H_k @ inv(T_ref) (H_k: the estimate on the
unmoved bracket, real brackets being slightly misaligned themselves); aligned brackets come back untouched;
what cannot be aligned falls back with one warning line. Figures print with ``pytest -s``; the full-size
benchmark is ``benchmarks/align_real.py`` (docs/align.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import fusionkit
from fusionkit.api import Align, Alignment
from fusionkit.cli.main import cli
from fusionkit.contracts import CONTRACTS
from fusionkit.errors import ComponentOptionError, FusionkitError, UnknownComponentError
from fusionkit.inference.align import align_exposures, describe, rms, turned, warp
from fusionkit.inference.deghost import best_exposed
from fusionkit.plugins import set_registry
from fusionkit.registry import Registry
from tests.real_data import bracket

NAMES = ("none", "mtb", "homography")
#: Pixels cut off each side of the 400 px bracket, so that the moved exposure shows real pixels everywhere.
MARGIN = 32
#: Scenes and a movement (dx, dy px, degrees) of their brightest exposure: a nearly white brightest exposure
#: (four-corners), a darkest one mostly black noise (seq-74), the brightest as the reference (golden-gate), a plain one.
MOVES = {
    "pmef1-four-corners-storm": (7.4, -11.8, 1.6),
    "pmef2-seq-74": (-12.3, 6.7, -1.9),
    "pmef1-golden-gate-1": (10.6, 9.2, -0.8),
    "pmef3-cafe": (-8.9, -10.4, 1.2),
}


def moved(scene: str, transform_of) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``scene``'s bracket (K, 3, H, W) cut by MARGIN, the same with its brightest (last) exposure moved by
    ``transform_of(shape)`` (bicubic, from the uncut photo), and that transform."""
    photos = bracket(scene)[0]
    height, width = photos.shape[-2:]
    unmoved = photos[:, :, MARGIN:height - MARGIN, MARGIN:width - MARGIN].contiguous()
    shape = tuple(unmoved.shape[-2:])
    transform = transform_of(shape)
    offset = np.array([[1.0, 0, MARGIN], [0, 1, MARGIN], [0, 0, 1]])
    shifted = unmoved.clone()
    shifted[-1] = warp(photos[-1], offset @ np.linalg.inv(transform), (0, 0, *shape), mode="bicubic")
    return unmoved, shifted, transform


def errors(name: str, unmoved: torch.Tensor, shifted: torch.Tensor, transform: np.ndarray) -> list[float]:
    """Per exposure, how far ``name``'s estimate on the moved bracket is from the relative truth (RMS px)."""
    reference = best_exposed(unmoved)
    base, found = (fusionkit.create("align", name)(stack, reference) for stack in (unmoved, shifted))
    assert base.reliable and found.reliable, (base.note, found.note)
    transforms = [np.eye(3)] * (len(unmoved) - 1) + [transform]
    truth = [transforms[k] @ base.homographies[k] @ np.linalg.inv(transforms[reference]) for k in range(len(unmoved))]
    return [rms(h, t, unmoved.shape[-2:]) for h, t in zip(found.homographies, truth)]


def fused_mef_ssim(exposures: torch.Tensor) -> float:
    """MEF-SSIM of Mertens' fusion of ``exposures`` (K, 3, H, W) against them."""
    fused = fusionkit.create("method", "mertens")(exposures[None])
    return float(fusionkit.create("metric", "mef_ssim")(fused, exposures[None])[0])


def aligned_bracket() -> torch.Tensor:
    """Three exposures (1, 3, 3, 120, 160) of one synthetic scene, exactly aligned: only their tones differ."""
    generator = torch.Generator().manual_seed(3)
    light = F.interpolate(torch.rand(1, 1, 12, 16, generator=generator), size=(120, 160), mode="bicubic", align_corners=False)
    light = 0.5 * light + 0.2 * torch.rand(1, 1, 120, 160, generator=generator)
    tint = 1 + 0.3 * (F.interpolate(torch.rand(1, 3, 3, 4, generator=generator), size=(120, 160), mode="bilinear") - 0.5)
    scene = (light * tint).clamp(0.01, 1)
    return torch.stack([(scene * gain).clamp(0, 1) ** (1 / 2.2) for gain in (0.4, 1.0, 2.5)], dim=1)


# ----- the contract --------------------------------------------------------------------------------
def test_every_align_component_keeps_the_contract_and_is_listed():
    assert CONTRACTS["align"].protocol is Align
    for component in fusionkit.available("align"):
        assert CONTRACTS["align"].problem(component.factory(), component.factory) is None and component.summary
    result = CliRunner().invoke(cli, ["plugins", "--kind", "align"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.output.splitlines()[1:] if line.strip()}
    assert listed == set(NAMES) and all(line.split()[0] == "align" for line in result.output.splitlines()[1:] if line.strip())


def test_none_gives_identities():
    found = fusionkit.create("align", "none")(torch.rand(4, 3, 20, 30), 2)
    assert found.reliable and found.homographies.shape == (4, 3, 3) and (found.homographies == np.eye(3)).all()


# ----- real brackets moved by a known transform ---------------------------------------------------
@pytest.mark.parametrize("scene", MOVES)
def test_homography_recovers_a_known_shift_and_rotation(scene):
    dx, dy, degrees = MOVES[scene]
    unmoved, shifted, transform = moved(scene, lambda shape: turned(shape, dx, dy, degrees))
    found = errors("homography", unmoved, shifted, transform)
    print(f"{scene}: moved {dx:+.1f}, {dy:+.1f} px, {degrees:+.1f} deg; RMS error per exposure " + " ".join(f"{e:.3f}" for e in found))
    assert max(found) < 0.5


@pytest.mark.parametrize("scene", MOVES)
def test_mtb_recovers_a_known_translation(scene):
    dx, dy, _ = MOVES[scene]
    unmoved, shifted, transform = moved(scene, lambda shape: turned(shape, dx, dy, 0.0))
    found = errors("mtb", unmoved, shifted, transform)
    print(f"{scene}: moved {dx:+.1f}, {dy:+.1f} px; mtb RMS error per exposure " + " ".join(f"{e:.3f}" for e in found))
    assert max(found) < 1.0


def test_the_report_says_how_each_exposure_moved_and_the_crop_is_covered_by_all():
    dx, dy, degrees = MOVES["pmef3-cafe"]
    unmoved, shifted, transform = moved("pmef3-cafe", lambda shape: turned(shape, dx, dy, degrees))
    lines = []
    result = align_exposures(shifted[None], "homography", reference=1, log=lines.append)
    assert not result.fell_back and len(lines) == 3 and "exposure 2 of 3: reference" in lines[1], lines
    # the report is the movement at the centre: the transform applied on the bracket's own slight misalignment
    shift = [float(v) for v in lines[2].split("shift ")[1].split(" px")[0].split(", ")]
    angle = float(lines[2].split("rotation ")[1].split(" deg")[0])
    # within the alignment target (0.5 px), as a rotation: the angle that moves a corner by 0.5 px
    height, width = shifted.shape[-2:]
    half_diagonal = 0.5 * math.hypot(height, width)
    assert abs(shift[0] - dx) < 1 and abs(shift[1] - dy) < 1, lines[2]
    assert abs(angle - degrees) < math.degrees(0.5 / half_diagonal), lines[2]
    assert describe(transform, shifted.shape[-2:]) == f"shift {dx:+.2f}, {dy:+.2f} px, rotation {degrees:+.3f} deg, scale 1.0000"
    # every pixel of the box, mapped by every homography, lands inside that exposure's frame
    top, left, bottom, right = result.box
    assert result.exposures.shape[-2:] == (bottom - top, right - left) and (bottom - top) * (right - left) > 0.8 * height * width
    xs, ys = np.meshgrid(np.arange(left, right), np.arange(top, bottom))
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    for homography in result.homographies:
        mapped = homography @ points
        x, y = mapped[:2] / mapped[2]
        assert x.min() >= -1e-6 and y.min() >= -1e-6 and x.max() <= width - 1 + 1e-6 and y.max() <= height - 1 + 1e-6


def test_aligning_the_moved_bracket_keeps_its_fused_mef_ssim_and_not_aligning_loses_it():
    """Mertens' fusion scored by MEF-SSIM on the same rectangle (the middle exposure the reference, so both
    brackets share its frame): the moved bracket aligned within 0.003 of the unmoved one aligned, unaligned lower."""
    for scene in ("pmef3-cafe", "pmef1-golden-gate-1"):
        dx, dy, degrees = MOVES[scene]
        unmoved, shifted, _ = moved(scene, lambda shape: turned(shape, dx, dy, degrees))
        still, aligned = (align_exposures(stack[None], "homography", reference=1) for stack in (unmoved, shifted))
        top, left = max(still.box[0], aligned.box[0]), max(still.box[1], aligned.box[1])
        bottom, right = min(still.box[2], aligned.box[2]), min(still.box[3], aligned.box[3])
        before, after = (fused_mef_ssim(r.exposures[0, :, :, top - r.box[0]:bottom - r.box[0], left - r.box[1]:right - r.box[1]])
                         for r in (still, aligned))
        plain = fused_mef_ssim(shifted[:, :, top:bottom, left:right])
        print(f"{scene}: MEF-SSIM unmoved {before:.4f}, moved and aligned {after:.4f}, moved unaligned {plain:.4f}")
        assert abs(after - before) < 0.003 and plain < before - 0.01


# ----- aligned brackets, and what cannot be aligned -----------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_an_aligned_bracket_comes_back_untouched(name):
    exposures = aligned_bracket()
    lines = []
    result = align_exposures(exposures, name, log=lines.append)
    assert not result.fell_back and result.box == (0, 0, 120, 160) and (result.homographies == np.eye(3)).all()
    assert torch.equal(result.exposures, exposures)
    assert len(lines) == 3 and all("shift +0.00, +0.00 px, rotation +0.000 deg" in line or "reference" in line for line in lines)


@pytest.mark.parametrize("case", ["noise", "flat", "unrelated scenes"])
@pytest.mark.parametrize("name", ["homography", "mtb"])
def test_what_cannot_be_aligned_falls_back_to_none_with_one_warning_line(case, name):
    if case == "unrelated scenes":  # the middle exposures of two scenes, as one bracket
        exposures = torch.stack([bracket("pmef3-cafe")[0, 1], bracket("pmef2-seq-74")[0, 1]])[None]
    elif case == "noise":
        exposures = torch.rand(1, 3, 3, 96, 128, generator=torch.Generator().manual_seed(5))
    else:
        exposures = torch.full((1, 3, 3, 96, 128), 0.5) * torch.tensor([0.4, 1.0, 1.6]).view(1, 3, 1, 1, 1)
    lines = []
    result = align_exposures(exposures, name, log=lines.append)
    warnings = [line for line in lines if line.startswith("warning:")]
    print(warnings)
    assert result.fell_back and len(warnings) == 1 and "unaligned" in warnings[0] and "\n" not in warnings[0], lines
    assert torch.equal(result.exposures, exposures) and (result.homographies == np.eye(3)).all()


# ----- mistakes --------------------------------------------------------------------------------------
def test_bad_input_is_a_one_line_error(restore_registry):
    exposures = torch.rand(1, 3, 3, 40, 50)
    cases = [
        (lambda: align_exposures(exposures[0]), "align_exposures takes one bracket (1, K, 3, H, W)"),
        (lambda: align_exposures(exposures, reference=3), "must be an exposure index from 0 to 2; got 3"),
        (lambda: align_exposures(exposures, "sift"), "sift"),
        (lambda: fusionkit.create("align", "homography", max_shift=2), "max_shift"),
        (lambda: fusionkit.create("align", "mtb", max_bits=0), "max_bits"),
    ]
    for call, text in cases:
        with pytest.raises(FusionkitError) as info:
            call()
        assert text in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert isinstance(pytest.raises(FusionkitError, cases[2][0]).value, UnknownComponentError)
    assert isinstance(pytest.raises(FusionkitError, cases[3][0]).value, ComponentOptionError)

    class Broken:
        """A third party's align component that loses an exposure."""

        def __call__(self, exposures, reference):
            return Alignment(np.stack([np.eye(3)] * (len(exposures) - 1)))

    registry = Registry()
    registry.register("align", "broken", Broken, plugin="fusionkit-broken")
    set_registry(registry)
    with pytest.raises(FusionkitError) as info:
        align_exposures(exposures, "broken")
    assert "align 'broken' gave homographies shaped (2, 3, 3); expected (3, 3, 3)" in str(info.value) and "\n" not in str(info.value)
