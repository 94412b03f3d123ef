"""``fusionkit fuse`` on photos as cameras leave them (issue #21): any order, handheld, moving content, rotated
JPEGs, RAW, 16 and 32 bits; the exposures are ordered, aligned and deghosted before fusion."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from fusionkit.cli.main import cli
from fusionkit.data.io import read_image
from fusionkit.inference.align import turned, warp
from tests.camera_files import dng, jpeg_with_exif
from tests.real_data import shared

needs_rawpy = pytest.mark.skipif(importlib.util.find_spec("rawpy") is None, reason="RAW files need rawpy")


def fuse(*args):
    """``fusionkit fuse`` with the training-free ``mertens`` unless another method is given; its result."""
    args = [str(a) for a in args]
    return CliRunner().invoke(cli, ["fuse", *args, *([] if "--method" in args else ["--method", "mertens"])])


def scene_texture(height: int = 96, width: int = 128, seed: int = 0) -> torch.Tensor:
    """A smooth random scene (3, H, W) in [0.05, 0.95] with detail at several scales, as radiance."""
    generator = torch.Generator().manual_seed(seed)
    layers = [F.interpolate(torch.rand(1, 3, height // s, width // s, generator=generator), size=(height, width),
                            mode="bicubic", align_corners=False) for s in (16, 4, 2)]
    return (sum(layers) / len(layers)).clamp(0, 1)[0] * 0.9 + 0.05


def exposed(scene: torch.Tensor, gain: float) -> np.ndarray:
    """``scene`` shot at ``gain`` times its radiance, as 8-bit pixels (H, W, 3)."""
    return (scene * gain).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


@pytest.fixture
def bracket(tmp_path) -> dict[str, Path]:
    """A dark, a middle and a bright shot of one scene, as PNG files."""
    scene = scene_texture()
    paths = {}
    for name, gain in (("dark", 0.4), ("middle", 1.0), ("bright", 2.2)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(exposed(scene, gain)).save(paths[name])
    return paths


def test_exposures_are_fused_darkest_first_whatever_order_they_are_given_in(bracket, tmp_path):
    given = fuse(bracket["dark"], bracket["middle"], bracket["bright"], "-o", tmp_path / "a.png", "--align", "none")
    shuffled = fuse(bracket["bright"], bracket["dark"], bracket["middle"], "-o", tmp_path / "b.png", "--align", "none", "-v")
    assert given.exit_code == shuffled.exit_code == 0, given.output + shuffled.output
    assert "order: dark.png, middle.png, bright.png (by brightness)" in shuffled.stderr
    assert torch.equal(read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png"))


def test_exif_exposure_orders_the_photos_where_every_file_records_one(tmp_path):
    scene = scene_texture()
    # EXIF says the first file let in more light than the second although its pixels are darker: EXIF wins
    jpeg_with_exif(tmp_path / "one.jpg", time=IFDRational(1, 50), f_number=IFDRational(8, 1), pixels=exposed(scene, 0.5))
    jpeg_with_exif(tmp_path / "two.jpg", time=IFDRational(1, 200), f_number=IFDRational(8, 1), pixels=exposed(scene, 1.5))
    result = fuse(tmp_path / "one.jpg", tmp_path / "two.jpg", "-o", tmp_path / "f.png", "--align", "none", "-v")
    assert result.exit_code == 0, result.output
    assert "order: two.jpg, one.jpg (by EXIF exposure)" in result.stderr


def test_a_student_gets_the_photos_darkest_first(bracket, tmp_path, monkeypatch):
    """The shipped student (trained on brackets darkest first) gives the same fusion for any order given."""
    monkeypatch.chdir(tmp_path)  # no runs/ here: fuse uses the shipped student
    runner = CliRunner()
    a = runner.invoke(cli, ["fuse", str(bracket["dark"]), str(bracket["bright"]), "-o", "a.png", "--align", "none"])
    b = runner.invoke(cli, ["fuse", str(bracket["bright"]), str(bracket["dark"]), "-o", "b.png", "--align", "none"])
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    assert torch.equal(read_image("a.png"), read_image("b.png"))


def as_moved(pixels: np.ndarray, dx: float, dy: float, degrees: float) -> np.ndarray:
    """``pixels`` (H, W, 3) uint8 as a camera turned by ``degrees`` about the centre and moved (dx, dy) would see them."""
    height, width = pixels.shape[:2]
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    out = warp(image, np.linalg.inv(turned((height, width), dx, dy, degrees)), (0, 0, height, width), mode="bicubic")
    return out.mul(255).round().byte().permute(1, 2, 0).numpy()


def real_bracket(tmp_path: Path, long_side: int = 480) -> list[Path]:
    """The darkest, middle and brightest exposure of a real scene, the brightest moved as a handheld shot would be."""
    scene = shared("brackets/test/pmef3-knossos2")
    files = sorted(scene.glob("*.jpg"))
    paths = []
    for name, source in (("dark.jpg", files[0]), ("middle.jpg", files[len(files) // 2]), ("bright.jpg", files[-1])):
        image = Image.open(source)
        image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
        image.save(tmp_path / name, quality=95)
        paths.append(tmp_path / name)
    moved = tmp_path / "bright-moved.png"
    Image.fromarray(as_moved(np.asarray(Image.open(paths[-1])), 7.3, -4.6, 1.2)).save(moved)
    return [*paths[:-1], moved]


def test_a_handheld_bracket_is_aligned_reported_and_cropped(tmp_path):
    dark, middle, moved = real_bracket(tmp_path)
    result = fuse(dark, middle, moved, "-o", tmp_path / "f.png", "-v")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "align homography: bright-moved.png" in line]
    assert len(lines) == 1 and "shift" in lines[0], result.stderr
    # the real bracket is itself turned by some hundredths of a degree: the moved exposure by 1.2 degrees more
    assert abs(float(lines[0].split("rotation ")[1].split()[0]) - 1.2) < 0.1, lines[0]
    assert "warning" not in result.stderr and "cropped to" in result.stderr
    width, height = Image.open(dark).size
    fused = read_image(tmp_path / "f.png")
    assert fused.shape[1] < height and fused.shape[2] < width  # the borders one exposure lacks are cut off


def test_alignment_none_and_mtb_and_unknown(tmp_path, bracket):
    plain = fuse(bracket["dark"], bracket["bright"], "-o", tmp_path / "none.png", "--align", "none")
    mtb = fuse(bracket["dark"], bracket["bright"], "-o", tmp_path / "mtb.png", "--align", "mtb")
    unknown = fuse(bracket["dark"], bracket["bright"], "-o", tmp_path / "x.png", "--align", "sift")
    assert plain.exit_code == mtb.exit_code == 0, plain.output + mtb.output
    assert read_image(tmp_path / "none.png").shape == read_image(tmp_path / "mtb.png").shape == (3, 96, 128)
    assert unknown.exit_code == 1 and "--align sift: no such alignment; use one of" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_an_unreliable_alignment_falls_back_with_one_warning_line(tmp_path):
    noise = np.random.default_rng(1)
    for name in ("a.png", "b.png"):  # two unrelated pictures: no transform relates them
        Image.fromarray(noise.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / name)
    result = fuse(tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "f.png")
    warnings = [line for line in result.stderr.splitlines() if "warning: align homography" in line]
    assert result.exit_code == 0 and len(warnings) == 1 and "fusing them unaligned" in warnings[0], result.stderr
    assert read_image(tmp_path / "f.png").shape == (3, 96, 128)


def test_deghost_reports_what_it_replaced(bracket, tmp_path):
    scene = scene_texture()
    moving = exposed(scene, 2.2)
    moving[30:60, 40:80] = (20, 200, 40)  # something that is not in the other shot
    Image.fromarray(moving).save(tmp_path / "bright-moving.png")
    result = fuse(bracket["dark"], tmp_path / "bright-moving.png", "-o", tmp_path / "f.png", "--align", "none",
                  "--deghost", "-v")
    assert result.exit_code == 0, result.output
    assert "deghost: moving content taken from" in result.stderr


def test_rotated_jpegs_fuse_upright(tmp_path):
    scene = exposed(scene_texture(), 1.0)
    for name, gain in (("dark.jpg", 0.5), ("bright.jpg", 1.6)):
        pixels = np.clip(scene.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        Image.fromarray(pixels).save(tmp_path / name, exif=exif, quality=95)
    result = fuse(tmp_path / "dark.jpg", tmp_path / "bright.jpg", "-o", tmp_path / "f.png", "--align", "none")
    assert result.exit_code == 0, result.output
    fused = read_image(tmp_path / "f.png")
    assert fused.shape == (3, 128, 96)  # shown upright: portrait
    upright = torch.from_numpy(np.rot90(scene, k=-1).copy()).permute(2, 0, 1).float() / 255
    assert torch.corrcoef(torch.stack([fused.mean(0).flatten(), upright.mean(0).flatten()]))[0, 1] > 0.9


def test_16bit_tiff_in_gives_16bit_tiff_out_with_more_than_256_levels(tmp_path):
    ramp = np.linspace(0, 1, 2000)[None, :, None].repeat(8, 0).repeat(3, 2)
    for name, gain in (("dark.tif", 0.5), ("bright.tif", 1.0)):
        tifffile.imwrite(tmp_path / name, (ramp * gain * 65535).round().astype(np.uint16))
    result = fuse(tmp_path / "dark.tif", tmp_path / "bright.tif", "-o", tmp_path / "f.tif", "--bits", "16",
                  "--align", "none")
    assert result.exit_code == 0, result.output
    fused = tifffile.imread(tmp_path / "f.tif")
    assert fused.dtype == np.uint16 and len(np.unique(fused)) > 256


def test_32bit_float_tiff_out_and_refused_elsewhere(bracket, tmp_path):
    result = fuse(bracket["dark"], bracket["bright"], "-o", tmp_path / "f.tif", "--bits", "32", "--align", "none")
    assert result.exit_code == 0, result.output
    fused = tifffile.imread(tmp_path / "f.tif")
    assert fused.dtype == np.float32 and 0 <= fused.min() and fused.max() <= 1
    refused = fuse(bracket["dark"], bracket["bright"], "-o", tmp_path / "f.png", "--bits", "32")
    assert refused.exit_code == 1 and "32-bit float is written as TIFF only" in refused.stderr
    assert not (tmp_path / "f.png").exists()


@needs_rawpy
def test_raw_files_fuse(tmp_path):
    dark, bright = dng(tmp_path / "dark.dng", 4000), dng(tmp_path / "bright.dng", 20000)
    result = fuse(dark, bright, "-o", tmp_path / "f.tif", "--bits", "16", "--align", "none")
    assert result.exit_code == 0, result.output
    assert tifffile.imread(tmp_path / "f.tif").shape == (64, 96, 3)


def test_a_raw_file_without_rawpy_is_one_line(tmp_path, monkeypatch, bracket):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy now fails
    (tmp_path / "shot.dng").write_bytes(b"not read")
    result = fuse(bracket["dark"], tmp_path / "shot.dng", "-o", tmp_path / "f.png", "--align", "none")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "shot.dng" in lines[0] and "fusionkit[raw]" in lines[0], result.stderr


def test_writing_over_an_input_is_still_refused_with_a_bits_32_tiff(bracket, tmp_path):
    Image.open(bracket["dark"]).save(tmp_path / "dark.tif")
    before = (tmp_path / "dark.tif").read_bytes()
    result = fuse(tmp_path / "dark.tif", bracket["bright"], "-o", tmp_path / "dark.tif", "--bits", "32")
    assert result.exit_code == 1 and "is the input" in result.stderr
    assert (tmp_path / "dark.tif").read_bytes() == before


def test_in_a_folder_each_bracket_reports_under_its_name(bracket, tmp_path):
    for scene in ("alpha", "beta"):
        (tmp_path / "shoot" / scene).mkdir(parents=True)
        for path in (bracket["bright"], bracket["dark"]):
            (tmp_path / "shoot" / scene / path.name).write_bytes(path.read_bytes())
    result = fuse(tmp_path / "shoot", "-o", tmp_path / "out", "--align", "none", "-v")
    assert result.exit_code == 0, result.output
    for scene in ("alpha", "beta"):
        assert f"fusionkit: {scene}: order: dark.png, bright.png (by brightness)" in result.stderr
