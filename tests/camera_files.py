"""Small camera files for the tests: JPEGs carrying shot EXIF, and a minimal DNG that LibRaw develops."""

from __future__ import annotations

import numpy as np
import tifffile
from PIL import Image


def jpeg_with_exif(path, *, time=None, f_number=None, iso=None, bias=None, taken=None, subseconds=None, pixels=None):
    """A JPEG (flat grey unless ``pixels`` (H, W, 3) uint8) whose EXIF records the given shot fields."""
    exif = Image.Exif()
    shot = exif.get_ifd(0x8769)
    values = {0x829A: time, 0x829D: f_number, 0x8827: iso, 0x9204: bias, 0x9003: taken, 0x9291: subseconds}
    shot.update({tag: value for tag, value in values.items() if value is not None})
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8) if pixels is None else pixels).save(path, exif=exif, quality=95)
    return path


def dng(path, level: int, orientation: int = 1, height: int = 64, width: int = 96):
    """A minimal DNG LibRaw develops: one 16-bit RGGB Bayer plane at about ``level`` of 65535, with its shot tags."""
    cfa = np.random.default_rng(0).integers(level, level + 50, (height, width)).astype(np.uint16)
    tags = [
        (271, "s", 0, "Fusionkit", True),  # Make
        (272, "s", 0, "Test", True),  # Model
        (274, "H", 1, orientation, True),
        (306, "s", 0, "2024:05:06 07:08:09", True),  # DateTime
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (33434, "2I", 1, (1, 100), True),  # ExposureTime
        (33437, "2I", 1, (8, 1), True),  # FNumber
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "Fusionkit Test", True),  # UniqueCameraModel
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "H", 1, 65535, True),  # WhiteLevel
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),  # ColorMatrix1: identity
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
    ]
    tifffile.imwrite(path, cfa, photometric=32803, subfiletype=0, software=False, extratags=tags)
    return path
