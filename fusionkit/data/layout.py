"""Reader for the folder layout of Afifi et al.'s exposure-errors dataset (CVPR 2021).

    <root>/training/INPUT_IMAGES/<scene>_<EV>.JPG      <root>/training/GT_IMAGES/<scene>.jpg
    <root>/validation/INPUT_IMAGES/<scene>_<EV>.JPG    <root>/validation/GT_IMAGES/<scene>.jpg
    <root>/testing/INPUT_IMAGES/<scene>_<EV>.JPG       <root>/testing/expert_<a-e>_testing_set/<scene>.jpg

with EV one of N1.5, N1, 0, P1, P1.5. Scanning lists folders only; images are decoded when loaded.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from ..errors import FusionkitWarning
from .errors import DataOptionError, DatasetLayoutError
from .io import is_image_file

#: Exposure names as they appear in file names, darkest first, and their relative EV.
EVS = ("N1.5", "N1", "0", "P1", "P1.5")
EV_VALUES = {"N1.5": -1.5, "N1": -1.0, "0": 0.0, "P1": 1.0, "P1.5": 1.5}

#: Split folder names; the short names are accepted as aliases.
SPLITS = ("training", "validation", "testing")
SPLIT_ALIASES = {"train": "training", "val": "validation", "valid": "validation", "test": "testing"}
EXPERTS = ("a", "b", "c", "d", "e")

INPUT_DIR = "INPUT_IMAGES"
GT_DIR = "GT_IMAGES"
LAYOUT_HINT = (
    "expected <root>/training|validation/{INPUT_IMAGES,GT_IMAGES} and "
    "<root>/testing/{INPUT_IMAGES,expert_<a-e>_testing_set} (see docs/data.md)"
)

_INPUT_NAME = re.compile(r"^(?P<scene>.+)_(?P<ev>N1\.5|N1|0|P1|P1\.5)$", re.IGNORECASE)


@dataclass(frozen=True)
class Scene:
    """One scene: the file of each exposure (by EV name) and its ground truth."""

    name: str
    inputs: Mapping[str, Path]
    target: Path


@dataclass
class SceneIndex:
    """The complete scenes of one split, and what was left out while scanning."""

    root: Path
    split: str
    scenes: list[Scene]
    #: reason -> number of scenes left out ("missing_exposure", "missing_target")
    skipped: dict[str, int] = field(default_factory=dict)
    #: files in INPUT_IMAGES that are not ``<scene>_<EV>.<image extension>``
    ignored_files: int = 0

    def __len__(self) -> int:
        return len(self.scenes)

    def __iter__(self) -> Iterator[Scene]:
        return iter(self.scenes)

    def __getitem__(self, i: int) -> Scene:
        return self.scenes[i]


def split_name(split: str) -> str:
    """Canonical split folder name for ``split`` (``train``/``val``/``test`` are aliases)."""
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        raise DataOptionError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} (or train, val, test)")
    return name


def target_dir_name(split: str, expert: str = "c") -> str:
    """Ground-truth folder of a split: GT_IMAGES, or the chosen expert's folder for testing."""
    if split != "testing":
        return GT_DIR
    if expert.lower() not in EXPERTS:
        raise DataOptionError(f"unknown expert {expert!r}; use one of {', '.join(EXPERTS)}")
    return f"expert_{expert.lower()}_testing_set"


def find_scenes(root: str | os.PathLike, split: str, *, expert: str = "c") -> SceneIndex:
    """Scan one split; scenes lacking an exposure or a ground truth are skipped with a warning."""
    root = Path(root)
    split = split_name(split)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder not found: {root}; {LAYOUT_HINT}")
    input_dir = _require_dir(root / split / INPUT_DIR)
    target_dir = _require_dir(root / split / target_dir_name(split, expert))

    exposures: dict[str, dict[str, Path]] = {}
    ignored = 0
    for path in _files(input_dir):
        match = _INPUT_NAME.match(path.stem) if is_image_file(path) else None
        if match is None:
            ignored += 1
            continue
        ev = match["ev"].upper()
        found = exposures.setdefault(match["scene"], {})
        if ev in found:
            raise DatasetLayoutError(f"two files for scene {match['scene']!r} at EV {ev}: {found[ev]} and {path}")
        found[ev] = path
    targets: dict[str, Path] = {}
    for path in filter(is_image_file, _files(target_dir)):
        if path.stem in targets:
            raise DatasetLayoutError(f"two ground truths for scene {path.stem!r}: {targets[path.stem]} and {path}")
        targets[path.stem] = path

    scenes, missing_ev, missing_gt = [], [], []
    for name in sorted(exposures):
        files = exposures[name]
        if len(files) < len(EVS):
            missing_ev.append((name, [ev for ev in EVS if ev not in files]))
        elif name not in targets:
            missing_gt.append(name)
        else:
            scenes.append(Scene(name, {ev: files[ev] for ev in EVS}, targets[name]))
    index = SceneIndex(root, split, scenes, {"missing_exposure": len(missing_ev), "missing_target": len(missing_gt)}, ignored)
    if missing_ev or missing_gt:
        warnings.warn(_skip_message(index, input_dir, missing_ev, missing_gt), FusionkitWarning, stacklevel=2)
    if not scenes:
        raise DatasetLayoutError(
            f"no complete scene in {input_dir} (files like <scene>_N1.5.JPG ... <scene>_P1.5.JPG, "
            f"ground truth <scene>.jpg in {target_dir.name}); {len(missing_ev) + len(missing_gt)} incomplete"
        )
    return index


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(f"missing folder {path}; {LAYOUT_HINT}")
    return path


def _files(folder: Path) -> list[Path]:
    """Regular files of a folder in name order (one scandir: fast on 20,000-file folders)."""
    with os.scandir(folder) as entries:
        return sorted(folder / e.name for e in entries if e.is_file())


def _skip_message(index: SceneIndex, input_dir: Path, missing_ev, missing_gt) -> str:
    total = len(index.scenes) + len(missing_ev) + len(missing_gt)
    parts = []
    if missing_ev:
        name, evs = missing_ev[0]
        parts.append(f"{len(missing_ev)} missing an exposure (e.g. {name!r} lacks {', '.join(evs)})")
    if missing_gt:
        parts.append(f"{len(missing_gt)} without ground truth (e.g. {missing_gt[0]!r})")
    return f"skipped {len(missing_ev) + len(missing_gt)} of {total} scenes in {input_dir}: {'; '.join(parts)}"
