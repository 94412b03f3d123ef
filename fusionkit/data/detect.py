"""Which reader a dataset folder needs, and the scanned split it gives (directly or through a dataset component)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .. import create
from .brackets import LAYOUT_HINT, Bracket, find_brackets
from .errors import DataOptionError, DatasetLayoutError
from .layout import EXPERTS, GT_DIR, INPUT_DIR, SPLIT_ALIASES, SPLITS, SceneIndex, find_scenes
from .manifest import RENDER_MANIFEST, SAMPLE_MANIFEST, check_finished

#: What ``scan_split`` returns: Afifi et al.'s named EVs (read as pairs) or brackets of any size.
Scenes = SceneIndex | list[Bracket]
#: The manifests of the sets fusionkit writes, and the command that finishes an interrupted one in ``{root}``.
_WRITTEN_SETS = ((RENDER_MANIFEST, "fusionkit data render PHOTOS {root}"), (SAMPLE_MANIFEST, "fusionkit data sample {root}"))

_AFIFI_DIRS = (INPUT_DIR, GT_DIR, *(f"expert_{e}_testing_set" for e in EXPERTS))


def detect_layout(root: str | os.PathLike) -> str:
    """``exposure_errors`` when ``root`` has Afifi et al.'s split folders (INPUT_IMAGES, ...), else ``brackets``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(
            f"dataset folder not found: {root}; expected Afifi et al.'s <root>/training/INPUT_IMAGES ... or "
            f"brackets: {LAYOUT_HINT}"
        )
    afifi = any((root / split / folder).is_dir() for split in SPLITS for folder in _AFIFI_DIRS)
    return "exposure_errors" if afifi else "brackets"


def scan_split(
    root: str | os.PathLike,
    split: str,
    *,
    dataset: str | None = None,
    expert: str = "c",
    options: Mapping[str, Any] | None = None,
) -> Scenes:
    """The scenes of one split: from the reader of the detected layout, or from the dataset component ``dataset``.

    ``expert`` goes to the exposure-errors reader (detected or named) and is ignored otherwise;
    ``options`` are a named component's own options.
    """
    check_finished_set(root)
    if dataset is None:
        if options:
            raise DataOptionError(f"dataset options {sorted(options)} need a dataset name (dataset=...)")
        if detect_layout(root) == "exposure_errors":
            return find_scenes(root, split, expert=expert)
        return find_brackets(root, split)
    options = dict(options or {})
    if dataset == "exposure_errors":
        options.setdefault("expert", expert)
    scenes = create("dataset", dataset, root, split, **options)
    if isinstance(scenes, (SceneIndex, list)) and not scenes:
        raise DatasetLayoutError(f"dataset {dataset!r} found no scene for split {split!r} in {root}")
    if isinstance(scenes, SceneIndex) or (isinstance(scenes, list) and all(isinstance(s, Bracket) for s in scenes)):
        return scenes
    raise DataOptionError(
        f"dataset {dataset!r} returned {type(scenes).__name__}; a dataset component returns a "
        "fusionkit.data.SceneIndex or a list of fusionkit.data.Bracket"
    )


def check_finished_set(root: str | os.PathLike) -> None:
    """Refuse a set that ``data render`` or ``data sample`` was interrupted writing: at ``root``, or above it when
    ``root`` is one of its split folders."""
    root = Path(root)
    folders = [root, root.parent] if root.name in SPLITS or root.name in SPLIT_ALIASES else [root]
    for folder in folders:
        for manifest, command in _WRITTEN_SETS:
            check_finished(folder, manifest, command.format(root=folder))
