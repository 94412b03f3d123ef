"""The brackets of a folder for ``fusionkit fuse IN_DIR``: one subfolder each, or its loose photos grouped by the
time between shots (EXIF) or by a fixed count."""

from __future__ import annotations

import os
import re
import warnings
from itertools import cycle
from pathlib import Path

from ..data.brackets import Bracket
from ..data.io import is_image_file, is_raw_file
from ..errors import FusionkitError, FusionkitWarning, param
from .fuse import same_file

_DIGITS = re.compile(r"(\d+)")


def brackets_in(folder: str | os.PathLike, *, gap: float | None = None, size: int | None = None,
                leave_out: str | os.PathLike | None = None) -> list[Bracket]:
    """The brackets of ``folder``: its loose photos grouped where ``gap`` (seconds between shots) or ``size`` (photos
    per bracket, in file-name order) is given, else its subfolders (``leave_out``, such as the output folder, aside)."""
    folder = Path(folder)
    if gap is not None and size is not None:
        raise FusionkitError(f"give {param('group_gap')} or {param('group_size')}, not both")
    if gap is not None or size is not None:
        photos = photos_in(folder)
        if not photos:
            raise FusionkitError(f"no photos directly in {folder} to group into brackets")
        return by_time(photos, gap) if gap is not None else by_count(photos, size)
    return by_subfolder(folder, leave_out)


def by_subfolder(folder: Path, leave_out: str | os.PathLike | None) -> list[Bracket]:
    """One bracket per subfolder holding two or more photos; those holding one are left out with a warning."""
    brackets, single = [], []
    for sub in _entries(folder, dirs=True):
        if leave_out is not None and same_file(sub, Path(leave_out)):
            continue
        photos = photos_in(sub)
        if len(photos) >= 2:
            brackets.append(Bracket(sub.name, photos, None))
        elif photos:
            single.append(sub.name)
    loose = photos_in(folder)
    if not brackets:
        if loose:
            raise FusionkitError(f"{folder} holds {len(loose)} loose photos and no bracket subfolders: give "
                                 f"{param('group_gap')} SECONDS or {param('group_size')} N to group them into brackets")
        raise FusionkitError(f"no brackets in {folder}: give one subfolder of two or more photos per bracket, "
                             f"or loose photos with {param('group_gap')} or {param('group_size')}")
    if single:
        warnings.warn(f"left out {len(single)} subfolders of {folder} with a single photo (e.g. {single[0]!r})", FusionkitWarning, stacklevel=2)
    if loose:
        warnings.warn(f"left out the {len(loose)} loose photos of {folder}: its subfolders are the brackets; give "
                      f"{param('group_gap')} or {param('group_size')} to fuse the loose photos instead", FusionkitWarning, stacklevel=2)
    return brackets


def by_time(photos: list[Path], gap: float) -> list[Bracket]:
    """Photos in the order they were shot; a bracket ends where more than ``gap`` seconds pass to the next shot."""
    from ..data.exif import capture_time

    if not gap >= 0:
        raise FusionkitError(f"{param('group_gap')} {gap}: give 0 seconds or more")
    shots = []
    for photo in photos:
        taken = capture_time(photo)
        if taken is None:
            raise FusionkitError(f"{photo}: its EXIF records no capture time, which {param('group_gap')} groups by; "
                                 f"use {param('group_size')} or one subfolder per bracket")
        shots.append((taken, photo))
    shots.sort(key=lambda shot: (shot[0], _natural(shot[1])))
    groups: list[list[Path]] = []
    for k, (taken, photo) in enumerate(shots):
        if k == 0 or taken - shots[k - 1][0] > gap:
            groups.append([])
        groups[-1].append(photo)
    return [Bracket(group[0].stem, group, None) for group in groups]


def by_count(photos: list[Path], size: int) -> list[Bracket]:
    """Photos in file-name order, ``size`` to a bracket; a count that does not divide evenly is refused."""
    if size < 2:
        raise FusionkitError(f"{param('group_size')} {size}: give 2 or more photos per bracket")
    if len(photos) % size:
        raise FusionkitError(f"{param('group_size')} {size}: the {len(photos)} photos in {photos[0].parent} do not make "
                             f"brackets of {size} ({len(photos) % size} left over)")
    return [Bracket(photos[i].stem, photos[i:i + size], None) for i in range(0, len(photos), size)]


def photos_in(folder: Path) -> list[Path]:
    """The JPEG, PNG and TIFF files directly in ``folder`` in natural name order, or its RAW files if it has none
    (a camera shooting RAW and JPEG leaves both: the JPEGs are fused)."""
    files = _entries(folder, dirs=False)
    return [path for path in files if is_image_file(path)] or [path for path in files if is_raw_file(path)]


def _entries(folder: Path, dirs: bool) -> list[Path]:
    """The subfolders (``dirs``) or files of ``folder``, hidden ones aside, in natural name order."""
    with os.scandir(folder) as entries:
        found = [folder / e.name for e in entries if not e.name.startswith(".") and (e.is_dir() if dirs else e.is_file())]
    return sorted(found, key=_natural)


def _natural(path: Path) -> list:
    """Sort key comparing runs of digits as numbers, so ``IMG_9.jpg`` comes before ``IMG_10.jpg``."""
    return [int(part) if odd else part for odd, part in zip(cycle((False, True)), _DIGITS.split(path.name))]
