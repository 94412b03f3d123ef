"""Shot metadata from EXIF: how much light each exposure let in and when it was taken, to order and group brackets.

Values come from Pillow's reading of the file's EXIF (JPEG, PNG, TIFF, and RAW files built on TIFF); other RAW
files fall back to rawpy, whose shot information costs unpacking the raw data. Unrecorded or unreadable
metadata is ``None``, not an error (the caller then orders by brightness); a missing file is an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from .errors import ImageFileError
from .io import is_raw_file

_EXIF_IFD = 0x8769
_EXPOSURE_TIME, _F_NUMBER, _ISO, _DATE_TIME_ORIGINAL = 0x829A, 0x829D, 0x8827, 0x9003
_EXPOSURE_BIAS, _SUBSEC_TIME_ORIGINAL = 0x9204, 0x9291
_EXIF_TIME = "%Y:%m:%d %H:%M:%S"


@dataclass(frozen=True)
class _Shot:
    """What a file records of its shot; each field None when it does not."""

    exposure_time: float | None = None
    f_number: float | None = None
    iso: float | None = None
    bias: float | None = None
    taken: datetime | None = None  # the camera's wall clock, time zone unknown

    def exposure(self) -> tuple[tuple[str, ...], float] | None:
        """(the fields it rests on, stops of light): comparable only between shots resting on the same fields."""
        if self.exposure_time is None:
            return None if self.bias is None else (("bias",), self.bias)
        fields = [name for name in ("exposure_time", "iso", "f_number") if getattr(self, name) is not None]
        stops = math.log2(self.exposure_time) + math.log2(self.iso or 1) - 2 * math.log2(self.f_number or 1)
        return tuple(fields), stops


def exposure_value(path: str | os.PathLike) -> float | None:
    """How much light the shot let in, in stops: log2(t * ISO / N^2), leaving out ISO or aperture where unrecorded,
    or the exposure bias alone without an exposure time; None when none of them is recorded."""
    exposure = _shot(Path(path)).exposure()
    return None if exposure is None else exposure[1]


def capture_time(path: str | os.PathLike) -> float | None:
    """When the shot was taken (DateTimeOriginal with its subseconds) as seconds since 1970, the camera's clock
    read as UTC: for time gaps between shots, not true instants. None when not recorded."""
    taken = _shot(Path(path)).taken
    return None if taken is None else taken.replace(tzinfo=timezone.utc).timestamp()


def order_by_exposure(paths: Iterable[str | os.PathLike]) -> list[Path] | None:
    """``paths`` darkest first by their EXIF exposure; None unless every file records a distinct one on the same
    terms (then the caller orders by brightness)."""
    paths = [Path(path) for path in paths]
    exposures = [_shot(path).exposure() for path in paths]
    if any(exposure is None for exposure in exposures) or len({fields for fields, _ in exposures}) > 1:
        return None
    stops = {path: value for path, (_, value) in zip(paths, exposures)}
    if len(set(stops.values())) < len(paths):  # ties (or repeated files): EXIF cannot tell these shots apart
        return None
    return sorted(paths, key=stops.__getitem__)


def _shot(path: Path) -> _Shot:
    if not path.is_file():
        raise ImageFileError(f"image file not found: {path}")
    shot = _pillow_shot(path)
    return _rawpy_shot(path) if shot == _Shot() and is_raw_file(path) else shot


def _pillow_shot(path: Path) -> _Shot:
    try:
        with Image.open(path) as image:
            if image.format == "PNG" and "exif" not in image.info:
                return _Shot()  # EXIF comes before a PNG's pixels in practice; Pillow would decode them to look after
            exif = image.getexif()
            tags = {**exif, **exif.get_ifd(_EXIF_IFD)}  # TIFF/EP files may keep shot tags in the first IFD
    except Exception:  # metadata of a file we did not make: unreadable is unrecorded
        return _Shot()
    iso = tags.get(_ISO)
    return _Shot(
        exposure_time=_positive(tags.get(_EXPOSURE_TIME)),
        f_number=_positive(tags.get(_F_NUMBER)),
        iso=_positive(iso[0] if isinstance(iso, tuple) and iso else iso),
        bias=_finite(tags.get(_EXPOSURE_BIAS)),
        taken=_taken(tags.get(_DATE_TIME_ORIGINAL), tags.get(_SUBSEC_TIME_ORIGINAL)),
    )


def _rawpy_shot(path: Path) -> _Shot:
    try:
        import rawpy

        with rawpy.imread(str(path)) as raw:
            other = raw.other
    except Exception:  # rawpy missing, or a file LibRaw cannot parse: reading it will say which
        return _Shot()
    unrecorded = datetime.fromtimestamp(0)  # LibRaw's timestamp 0, read back in local time as rawpy does
    return _Shot(
        exposure_time=_positive(other.shutter_speed),
        f_number=_positive(other.aperture),
        iso=_positive(other.iso_speed),
        taken=None if other.timestamp == unrecorded else other.timestamp,
    )


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _positive(value) -> float | None:
    number = _finite(value)
    return number if number is not None and number > 0 else None


def _taken(text, subseconds) -> datetime | None:
    try:
        taken = datetime.strptime(str(text).strip("\x00 "), _EXIF_TIME)
    except ValueError:
        return None
    digits = str(subseconds or "").strip("\x00 ")
    return taken.replace(microsecond=int(digits.ljust(6, "0")[:6])) if digits.isdigit() else taken
