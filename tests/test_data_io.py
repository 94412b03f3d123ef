"""Image reading and writing: bit depths, channel layouts, formats, and one-line errors naming the file."""

from __future__ import annotations

import importlib.util

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fusionkit.data import ImageFileError, read_image, write_image

needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="16-bit colour PNG needs OpenCV")


def _one_line_naming(exc: pytest.ExceptionInfo, name: str) -> str:
    message = str(exc.value)
    assert "\n" not in message and name in message, message
    return message


def test_8bit_png_reads_as_float_rgb_in_unit_range(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", pixels)
    image = read_image(tmp_path / "a.png")
    assert image.dtype == torch.float32 and image.shape == (3, 5, 7)
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_16bit_tiff_is_divided_by_65535(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    iio.imwrite(tmp_path / "a.tif", pixels, plugin="tifffile")
    image = read_image(tmp_path / "a.tif")
    assert torch.allclose(image, torch.from_numpy(pixels.astype(np.float32) / 65535).permute(2, 0, 1))


@needs_opencv
def test_16bit_colour_png_keeps_its_16_bits(tmp_path):
    import cv2

    pixels = np.random.default_rng(2).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), pixels[..., ::-1])  # OpenCV writes BGR
    image = read_image(tmp_path / "a.png")
    assert torch.allclose(image, torch.from_numpy(pixels.astype(np.float32) / 65535).permute(2, 0, 1))


def test_16bit_grey_png_becomes_three_equal_channels(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 65536, (4, 6), dtype=np.uint16)
    iio.imwrite(tmp_path / "g.png", pixels)
    image = read_image(tmp_path / "g.png")
    assert image.shape == (3, 4, 6)
    assert torch.allclose(image[0], torch.from_numpy(pixels.astype(np.float32) / 65535))
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_8bit_grey_jpeg_and_rgba_png(tmp_path):
    grey = np.full((8, 8), 128, np.uint8)
    iio.imwrite(tmp_path / "g.JPG", grey, extension=".jpg")
    assert read_image(tmp_path / "g.JPG").shape == (3, 8, 8)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red: alpha is dropped, not composited
    iio.imwrite(tmp_path / "a.png", rgba)
    image = read_image(tmp_path / "a.png")
    assert image.shape == (3, 3, 4)
    assert torch.allclose(image[0], torch.tensor(200 / 255)) and image[1:].eq(0).all()


@pytest.mark.parametrize("suffix, bits, tolerance", [(".png", 8, 0.5 / 255), (".tif", 16, 0.5 / 65535), (".tiff", 8, 0.5 / 255)])
def test_write_then_read_round_trips(tmp_path, suffix, bits, tolerance):
    image = torch.rand(3, 9, 11)
    write_image(tmp_path / f"out{suffix}", image, bits=bits)
    assert (read_image(tmp_path / f"out{suffix}") - image).abs().max() <= tolerance + 1e-7
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # the temp file was renamed, not left


@needs_opencv
def test_write_16bit_colour_png(tmp_path):
    image = torch.rand(3, 5, 6)
    write_image(tmp_path / "out.png", image, bits=16)
    assert (read_image(tmp_path / "out.png") - image).abs().max() <= 0.5 / 65535 + 1e-7


def test_write_jpeg_and_grey(tmp_path):
    image = torch.full((3, 16, 16), 0.5)
    write_image(tmp_path / "out.jpg", image, quality=90)
    assert (read_image(tmp_path / "out.jpg") - image).abs().max() < 0.02
    write_image(tmp_path / "grey.png", torch.linspace(0, 1, 12).reshape(3, 4), bits=16)
    assert read_image(tmp_path / "grey.png").shape == (3, 3, 4)


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(ImageFileError) as exc:
        read_image(tmp_path / "garbage.jpg")
    _one_line_naming(exc, "garbage.jpg")

    iio.imwrite(tmp_path / "whole.jpg", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError) as exc:
        read_image(tmp_path / "cut.jpg")
    assert "truncated" in _one_line_naming(exc, "cut.jpg")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageFileError) as exc:
        read_image(tmp_path / "nope.png")
    assert "not found" in _one_line_naming(exc, "nope.png")


def test_running_out_of_memory_while_decoding_says_so_and_does_not_blame_the_file(tmp_path, monkeypatch):
    import fusionkit.data.io as io

    iio.imwrite(tmp_path / "big.png", np.zeros((48, 80, 3), dtype=np.uint8))

    def exhausted(path):
        raise MemoryError()

    monkeypatch.setattr(io, "_decode", exhausted)
    with pytest.raises(ImageFileError) as exc:
        read_image(tmp_path / "big.png")
    message = _one_line_naming(exc, "big.png")
    assert "out of memory decoding" in message and "80x48" in message and "cannot read" not in message


@pytest.mark.parametrize(
    "name, bits, expected",
    [("a.jpg", 16, "JPEG is 8-bit only"), ("a.bmp", 8, "use one of"), ("a.png", 12, "bits must be 8, 16 or 32")],
)
def test_write_rejects_what_it_cannot_write(tmp_path, name, bits, expected):
    with pytest.raises(ImageFileError) as exc:
        write_image(tmp_path / name, torch.zeros(3, 2, 2), bits=bits)
    assert expected in _one_line_naming(exc, name)
    assert not any(tmp_path.iterdir())
