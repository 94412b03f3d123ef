"""Dataset components: the two folder layouts fusionkit reads, ``exposure_errors`` and ``brackets``.

Contract of a ``dataset`` component: its factory is called as ``factory(root, split, **options)``,
``split`` being ``training``, ``validation`` or ``testing`` (or ``train``, ``val``, ``test``), and
returns the split's scenes, scanned but not decoded, as either

- a ``fusionkit.data.SceneIndex``: Afifi et al.'s five named EVs per scene and a ground truth,
  which ``build_loader`` reads as pairs (``pairs="random"|"low"|"high"|"all"``), or
- a non-empty ``list`` of ``fusionkit.data.Bracket``: any number of exposures per scene, darkest
  first, and a reference or None, which ``build_loader`` reads as K exposures per item.

It raises a one-line ``FusionkitError`` (``fusionkit.data.DatasetLayoutError``) when the folder holds
nothing it can read. ``build_loader(root, split, dataset=NAME, dataset_options={...})`` builds it
through the registry, so a third-party dataset plugs in the same way. The factories below are
named like classes because the plugin registers them under these names; they are thin functions.
"""

from __future__ import annotations

import os

from fusionkit.api import Bracket, SceneIndex, find_brackets, find_scenes


def ExposureErrorsDataset(root: str | os.PathLike, split: str, *, expert: str = "c") -> SceneIndex:
    """Afifi et al.'s exposure-errors layout: five EVs per scene, an expert's ground truth (a-e) for testing."""
    return find_scenes(root, split, expert=expert)


def BracketsDataset(root: str | os.PathLike, split: str) -> list[Bracket]:
    """Exposure brackets, a folder per scene with any number of exposures, with or without a reference."""
    return find_brackets(root, split)
