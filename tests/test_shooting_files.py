"""Files as photographers' tools make them: 16-bit and float TIFF, 16-bit PNG, EXIF orientation in every
format, EXIF exposure and capture time to order a bracket, and camera RAW through rawpy."""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageOps
from PIL.TiffImagePlugin import IFDRational

from fusionkit.data.errors import ImageFileError
from fusionkit.data.exif import capture_time, exposure_value, order_by_exposure
from fusionkit.data.io import is_image_file, is_raw_file, read_image, write_image
from tests.camera_files import dng, jpeg_with_exif

needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="16-bit colour PNG needs OpenCV")
needs_rawpy = pytest.mark.skipif(importlib.util.find_spec("rawpy") is None, reason="RAW files need rawpy")


def _one_line_naming(exc: pytest.ExceptionInfo, name: str) -> str:
    message = str(exc.value)
    assert "\n" not in message and name in message, message
    return message


def _gradient16(height: int = 40, width: int = 1000) -> np.ndarray:
    """A smooth 16-bit ramp with far more than 256 levels, different in each channel."""
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    rows = np.tile(ramp, (height, 1))
    return np.stack([rows, rows[:, ::-1], np.full_like(rows, 30000)], -1)


def test_16bit_tiff_in_and_out_keeps_its_levels(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", _gradient16())
    write_image(tmp_path / "out.tif", read_image(tmp_path / "in.tif"), bits=16)
    back = read_image(tmp_path / "out.tif")
    assert tifffile.imread(tmp_path / "out.tif").dtype == np.uint16
    assert back[0].unique().numel() > 256
    assert torch.equal(back, read_image(tmp_path / "in.tif"))


@needs_opencv
def test_16bit_png_in_and_out_keeps_its_levels(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "in.png"), _gradient16()[..., ::-1])
    write_image(tmp_path / "out.png", read_image(tmp_path / "in.png"), bits=16)
    back = read_image(tmp_path / "out.png")
    assert back[0].unique().numel() > 256
    assert torch.equal(back, read_image(tmp_path / "in.png"))


def test_32bit_float_tiff_round_trips_the_floats_clamped_to_unit_range(tmp_path):
    image = torch.rand(3, 9, 11) * 1.2 - 0.1
    write_image(tmp_path / "out.tiff", image, bits=32)
    assert tifffile.imread(tmp_path / "out.tiff").dtype == np.float32
    assert torch.equal(read_image(tmp_path / "out.tiff"), image.clamp(0, 1))


@pytest.mark.parametrize("name", ["out.png", "out.jpg"])
def test_32bit_float_is_refused_outside_tiff(tmp_path, name):
    with pytest.raises(ImageFileError) as exc:
        write_image(tmp_path / name, torch.zeros(3, 2, 2), bits=32)
    assert "TIFF only" in _one_line_naming(exc, name)
    assert not any(tmp_path.iterdir())


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """How Pillow shows ``pixels`` stored with EXIF ``orientation``."""
    image = Image.fromarray(pixels)
    image.getexif()[0x0112] = orientation
    return np.array(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_in_tiff_and_png_as_pillow_shows_them(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = torch.from_numpy(_upright(pixels, orientation)).permute(2, 0, 1).float() / 255
    tifffile.imwrite(tmp_path / "a.tif", pixels, extratags=[(274, "H", 1, orientation, True)])
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "a.png", exif=exif)  # a PNG eXIf chunk
    assert torch.equal(read_image(tmp_path / "a.tif"), expected)
    assert torch.equal(read_image(tmp_path / "a.png"), expected)


def test_rotated_jpeg_reads_upright(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high, left half white
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees anticlockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape == (3, 40, 20)
    assert image[:, 20:].mean() > 0.9 and image[:, :20].mean() < 0.1  # the white half is now at the bottom


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@needs_opencv
def test_rotated_16bit_colour_png_reads_upright(tmp_path):
    import cv2

    pixels = np.zeros((20, 40, 3), dtype=np.uint16)
    pixels[:, :20] = 65535
    encoded = cv2.imencode(".png", pixels)[1].tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    header_end = 8 + 25  # signature, then the IHDR chunk
    chunk = _png_chunk(b"eXIf", exif.tobytes()[6:])  # the TIFF structure, without JPEG's "Exif" prefix
    (tmp_path / "rotated.png").write_bytes(encoded[:header_end] + chunk + encoded[header_end:])
    image = read_image(tmp_path / "rotated.png")
    assert image.shape == (3, 40, 20)
    assert image[:, :20].mean() > 0.9 and image[:, 20:].mean() < 0.1  # the white half is now on top


def test_exposure_value_and_capture_time_from_jpeg_exif(tmp_path):
    path = jpeg_with_exif(tmp_path / "a.jpg", time=IFDRational(1, 100), f_number=IFDRational(8, 1), iso=200,
                           taken="2024:05:06 07:08:09", subseconds="25")
    assert exposure_value(path) == pytest.approx(math.log2(0.01 * 200 / 8**2))
    assert capture_time(path) == pytest.approx(1714979289.25)  # 2024-05-06 07:08:09.25, the clock read as UTC


def test_unrecorded_metadata_is_none(tmp_path):
    bare = jpeg_with_exif(tmp_path / "bare.jpg")
    assert exposure_value(bare) is None and capture_time(bare) is None
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert exposure_value(tmp_path / "plain.png") is None
    broken = jpeg_with_exif(tmp_path / "broken.jpg", time=IFDRational(1, 0), taken="0000:00:00 00:00:00")
    assert exposure_value(broken) is None and capture_time(broken) is None
    assert exposure_value(jpeg_with_exif(tmp_path / "bias.jpg", bias=IFDRational(-2, 1))) == -2


def test_exposure_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(ImageFileError) as exc:
        exposure_value(tmp_path / "nope.jpg")
    assert "not found" in _one_line_naming(exc, "nope.jpg")


def test_bracket_is_ordered_darkest_first_by_exif(tmp_path):
    times = {"a.jpg": IFDRational(1, 30), "b.jpg": IFDRational(1, 500), "c.jpg": IFDRational(1, 125)}
    paths = [jpeg_with_exif(tmp_path / name, time=t, f_number=IFDRational(4, 1), iso=100) for name, t in times.items()]
    assert [p.name for p in order_by_exposure(paths)] == ["b.jpg", "c.jpg", "a.jpg"]
    higher_iso = jpeg_with_exif(tmp_path / "d.jpg", time=IFDRational(1, 500), f_number=IFDRational(4, 1), iso=400)
    assert [p.name for p in order_by_exposure([higher_iso, paths[1]])] == ["b.jpg", "d.jpg"]


def test_exif_order_gives_way_when_it_cannot_tell(tmp_path):
    full = jpeg_with_exif(tmp_path / "full.jpg", time=IFDRational(1, 100), f_number=IFDRational(4, 1), iso=100)
    bare = jpeg_with_exif(tmp_path / "bare.jpg")
    no_iso = jpeg_with_exif(tmp_path / "no_iso.jpg", time=IFDRational(1, 10), f_number=IFDRational(4, 1))
    twin = jpeg_with_exif(tmp_path / "twin.jpg", time=IFDRational(1, 100), f_number=IFDRational(4, 1), iso=100)
    assert order_by_exposure([full, bare]) is None  # one file records nothing
    assert order_by_exposure([full, no_iso]) is None  # different terms: not comparable
    assert order_by_exposure([full, twin]) is None  # a tie


def test_raw_files_are_readable_but_not_dataset_images():
    assert is_raw_file("IMG_0001.CR2") and is_raw_file("a.dng") and not is_raw_file("a.jpg")
    assert not is_image_file("IMG_0001.CR2")  # RAW+JPEG shooting would otherwise double every scene


def test_raw_without_rawpy_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy now fails
    (tmp_path / "shot.nef").write_bytes(b"not read")
    with pytest.raises(ImageFileError) as exc:
        read_image(tmp_path / "shot.nef")
    assert _one_line_naming(exc, "shot.nef") == (
        f"cannot read {tmp_path / 'shot.nef'}: RAW files need rawpy (pip install 'fusionkit[raw]')"
    )
    assert exposure_value(tmp_path / "shot.nef") is None


@needs_rawpy
def test_dng_is_developed_keeping_the_exposure_differences(tmp_path):
    dark = read_image(dng(tmp_path / "dark.dng", 4000))
    bright = read_image(dng(tmp_path / "bright.DNG", 20000))
    assert dark.shape == bright.shape == (3, 64, 96)
    assert 0.1 < dark.mean() < 0.5 < bright.mean() < 0.9  # no automatic brightening evens them out
    assert read_image(dng(tmp_path / "turned.dng", 4000, orientation=6)).shape == (3, 96, 64)


@needs_rawpy
def test_raw_shot_metadata_and_pixel_limit(tmp_path, monkeypatch):
    path = dng(tmp_path / "shot.dng", 4000)
    assert exposure_value(path) == pytest.approx(math.log2(0.01 / 8**2), abs=1e-6)  # no ISO recorded
    assert capture_time(path) == pytest.approx(1714979289)
    monkeypatch.setenv("FUSIONKIT_MAX_PIXELS", "1000")
    with pytest.raises(ImageFileError) as exc:
        read_image(path)
    assert "96x64 pixels" in _one_line_naming(exc, "shot.dng")


@needs_rawpy
def test_corrupt_raw_names_the_file(tmp_path):
    (tmp_path / "broken.cr2").write_bytes(b"this is not a raw file" * 1000)
    with pytest.raises(ImageFileError) as exc:
        read_image(tmp_path / "broken.cr2")
    assert _one_line_naming(exc, "broken.cr2").endswith(": Unsupported file format or not RAW file")
