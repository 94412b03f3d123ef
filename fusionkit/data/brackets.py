"""Reader for exposure brackets: a folder per scene holding any number of exposures, darkest first.

    <root>/<split>/<scene>/NN.jpg                                          (brackets)
    <root>/<split>/inputs/<scene>/NN.jpg + <root>/<split>/reference/<scene>.jpg   (sice)

A ``<split>/reference/`` folder is optional in either layout; where it exists, every scene needs
its ``<scene>.<ext>`` there (scenes without one are skipped).

``<split>`` is ``train``, ``val`` or ``test`` (or ``training``, ``validation``, ``testing``); ``root``
may also be one split folder itself, which then serves every split. Scanning lists folders only.
"""

from __future__ import annotations

import os
import re
import warnings
from itertools import cycle
from dataclasses import dataclass
from pathlib import Path

from ..errors import FusionkitWarning
from .errors import DatasetLayoutError
from .io import is_image_file
from .layout import SPLIT_ALIASES, SPLITS, split_name

INPUTS_DIR = "inputs"
REFERENCE_DIR = "reference"
LAYOUT_HINT = (
    "expected <split>/<scene>/NN.jpg (brackets) or <split>/inputs/<scene>/NN.jpg with "
    "<split>/reference/<scene>.jpg (sice), <split> being train, val or test, or the split folder itself "
    "(see docs/data.md)"
)

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Bracket:
    """One scene: its exposures darkest first, and its reference image (None when the set has none)."""

    name: str
    exposures: list[Path]
    reference: Path | None

    @property
    def labels(self) -> list[str]:
        """The exposures' names as batches report them (file names without extension: ``01``, ``05``)."""
        return [path.stem for path in self.exposures]


def split_folder(root: str | os.PathLike, split: str) -> Path:
    """The folder of ``split`` under ``root`` (any alias of its name), or ``root`` when it holds no split folder."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder not found: {root}; {LAYOUT_HINT}")
    wanted = split_name(split)
    names = [wanted] + [alias for alias, name in SPLIT_ALIASES.items() if name == wanted]
    found = [root / name for name in names if (root / name).is_dir()]
    if len(found) > 1:
        raise DatasetLayoutError(f"two folders for split {split!r}: {found[0]} and {found[1]}; keep one")
    if found:
        return found[0]
    present = sorted(p.name for p in _dirs(root) if p.name in SPLITS or p.name in SPLIT_ALIASES)
    if present:
        raise DatasetLayoutError(f"no {split!r} split in {root} (it has {', '.join(present)}); {LAYOUT_HINT}")
    return root


def find_brackets(root: str | os.PathLike, split: str) -> list[Bracket]:
    """Scan one split; scenes with fewer than two exposures, or lacking their reference, are skipped with a warning."""
    folder = split_folder(root, split)
    scene_root = folder / INPUTS_DIR if (folder / INPUTS_DIR).is_dir() else folder
    references = _references(folder / REFERENCE_DIR) if (folder / REFERENCE_DIR).is_dir() else None

    brackets, too_few, unreferenced = [], [], []
    for scene in _dirs(scene_root):
        if scene.name == REFERENCE_DIR:
            continue
        exposures = sorted(filter(is_image_file, _files(scene)), key=_natural)
        if len(exposures) < 2:
            too_few.append(scene.name)
        elif references is not None and scene.name not in references:
            unreferenced.append(scene.name)
        else:
            brackets.append(Bracket(scene.name, exposures, references[scene.name] if references is not None else None))
    if too_few or unreferenced:
        warnings.warn(_skip_message(scene_root, len(brackets), too_few, unreferenced), FusionkitWarning, stacklevel=2)
    if not brackets:
        skipped = len(too_few) + len(unreferenced)
        raise DatasetLayoutError(
            f"no scene with two or more exposures in {scene_root}"
            + (f" ({skipped} skipped)" if skipped else "") + f"; {LAYOUT_HINT}"
        )
    return brackets


def _references(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in filter(is_image_file, _files(folder)):
        if path.stem in found:
            raise DatasetLayoutError(f"two references for scene {path.stem!r}: {found[path.stem]} and {path}")
        found[path.stem] = path
    return found


def _natural(path: Path) -> list:
    """Sort key comparing runs of digits as numbers, so ``2.jpg`` comes before ``10.jpg``."""
    return [int(part) if odd else part for odd, part in zip(cycle((False, True)), _DIGITS.split(path.name))]


def _dirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(folder / e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(folder / e.name for e in entries if e.is_file() and not e.name.startswith("."))


def _skip_message(folder: Path, kept: int, too_few: list[str], unreferenced: list[str]) -> str:
    parts = []
    if too_few:
        parts.append(f"{len(too_few)} with fewer than two exposures (e.g. {too_few[0]!r})")
    if unreferenced:
        parts.append(f"{len(unreferenced)} without a reference (e.g. {unreferenced[0]!r})")
    skipped = len(too_few) + len(unreferenced)
    return f"skipped {skipped} of {kept + skipped} scenes in {folder}: {'; '.join(parts)}"
