"""Inputs fusionkit did not make are not trusted: a crafted manifest deletes nothing outside its folder,
photos with non-finite pixels are refused with one line naming the file, and scores that are not
numbers never reach JSON output as NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusionkit.data.io import read_image
from fusionkit.data.manifest import ensure_generated
from fusionkit.errors import FusionkitError


def test_a_crafted_manifest_deletes_nothing_through_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    crafted = {"version": 0, "complete": False, "files": {"link/victim.txt": None, "../outside/victim.txt": None}}
    (out / "set.json").write_text(json.dumps(crafted))

    def generate():
        (out / "a.txt").write_text("new")
        return {}

    ensure_generated(out, "set.json", {"version": 1}, ["a.txt"], generate, what="test set")
    assert victim.read_text() == "keep me"
    assert (out / "a.txt").read_text() == "new"


def test_a_manifest_file_that_is_itself_a_link_is_not_deleted(tmp_path):
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").symlink_to(outside)
    (out / "set.json").write_text(json.dumps({"version": 0, "complete": True, "files": {"old.png": 8}}))
    ensure_generated(out, "set.json", {"version": 1}, [], lambda: {}, what="test set")
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_naming_the_file(tmp_path, bad):
    tifffile = pytest.importorskip("tifffile")
    pixels = np.full((32, 32, 3), 0.5, dtype=np.float32)
    pixels[10:20, 10:20] = bad
    path = tmp_path / "exposure.tif"
    tifffile.imwrite(path, pixels)
    with pytest.raises(FusionkitError) as caught:
        read_image(path)
    message = str(caught.value)
    assert str(path) in message and "non-finite" in message and "\n" not in message


def test_score_json_is_strict_json_with_null_and_a_reason_for_undefined_metrics(tmp_path):
    from click.testing import CliRunner

    from fusionkit.cli.main import cli
    from fusionkit.data.io import write_image
    import torch

    flat = [write_image(tmp_path / f"{name}.png", torch.full((3, 64, 64), value)) for name, value in (("f", 0.5), ("a", 0.0), ("b", 0.0))]
    result = CliRunner().invoke(cli, ["score", str(flat[0]), "--inputs", str(flat[1]), str(flat[2]), "--metric", "qabf", "--json"])
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    scores = json.loads(result.output, parse_constant=refuse)
    assert scores["qabf"] is None and "flat" in scores["undefined"]["qabf"]
    text = CliRunner().invoke(cli, ["score", str(flat[0]), "--inputs", str(flat[1]), str(flat[2]), "--metric", "qabf"])
    assert text.exit_code == 0 and "undefined (" in text.output


def test_score_of_small_images_gives_every_metric_they_fit_and_says_why_not_the_rest(tmp_path):
    """Under 44 px a side MEF-SSIM's three scales do not fit: by default it is null with that reason, the rest
    are scored; asked for by name, it is a one-line error."""
    from click.testing import CliRunner

    from fusionkit.cli.main import cli
    from fusionkit.data.io import write_image
    import torch

    torch.manual_seed(0)
    small = [str(write_image(tmp_path / f"{name}.png", torch.rand(3, 30, 40) * gain)) for name, gain in (("f", 0.7), ("a", 0.4), ("b", 1.0))]
    result = CliRunner().invoke(cli, ["score", small[0], "--inputs", *small[1:], "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["mef_ssim"] is None and "too small" in scores["undefined"]["mef_ssim"]
    assert all(isinstance(scores[name], float) for name in ("qabf", "nmi", "crushed_shadows"))
    named = CliRunner().invoke(cli, ["score", small[0], "--inputs", *small[1:], "--metric", "mef_ssim"])
    assert named.exit_code == 1 and "too small" in named.stderr and len(named.stderr.splitlines()) == 1


def test_exif_orientation_is_applied_when_reading(tmp_path):
    from PIL import Image

    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high, left half white
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == (3, 40, 20)  # shown upright: 20 wide, 40 high
    assert image[:, :20].mean() > 0.9 and image[:, 20:].mean() < 0.1  # the white half is now on top


def test_cmyk_jpeg_is_read_as_its_rgb_colours(tmp_path):
    from PIL import Image

    rgb = Image.new("RGB", (16, 16), (200, 40, 40))
    path = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(path, quality=95)
    image = read_image(path)
    assert image.shape == (3, 16, 16)
    assert torch.allclose(image.mean((1, 2)), torch.tensor([200, 40, 40]) / 255, atol=0.04)
