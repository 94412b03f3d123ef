"""Tiny synthetic datasets for tests that need real files fast: the exposure-errors layout and brackets."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path
from typing import Mapping, Sequence

import imageio.v3 as iio
import numpy as np

EVS = {"N1.5": -1.5, "N1": -1.0, "0": 0.0, "P1": 1.0, "P1.5": 1.5}


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colourful image with some edges, float in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi, 3)
    freq = rng.uniform(1, 4, 3)
    image = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * f * (x + y * k) + p) for f, p, k in zip(freq, phase, (0.3, 0.7, 1.1))], -1)
    image[size // 3 : size // 2, size // 4 : size // 2] *= 0.5
    return image.clip(0, 1)


def make_fake_dataset(root: Path, train: int = 6, val: int = 2, test: int = 2, size: int = 48, seed: int = 0) -> Path:
    """Write ``training``/``validation``/``testing`` folders with five EVs per scene and ground truth."""
    rng = np.random.default_rng(seed)
    for split, count in (("training", train), ("validation", val), ("testing", test)):
        inputs = root / split / "INPUT_IMAGES"
        gt_dir = root / split / ("expert_c_testing_set" if split == "testing" else "GT_IMAGES")
        inputs.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = f"{split[:2]}{index:03d}"
            gt = _scene(rng, size)
            iio.imwrite(gt_dir / f"{name}.jpg", (gt * 255 + 0.5).astype(np.uint8), quality=95)
            linear = gt**2.2
            for ev_name, ev in EVS.items():
                shot = np.clip(linear * 2.0**ev, 0, 1) ** (1 / 2.4)
                iio.imwrite(inputs / f"{name}_{ev_name}.JPG", (shot * 255 + 0.5).astype(np.uint8), extension=".jpg", quality=90)
    return root


def bracket_pattern(blue: int, size: tuple[int, int]) -> np.ndarray:
    """R encodes x and G encodes y (so crops and flips can be read back); B tells the images apart."""
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    return np.stack([x * 7 % 256, y * 10 % 256, np.full_like(x, blue)], axis=-1).astype(np.uint8)


def make_fake_brackets(
    root: Path,
    scenes: Mapping[str, int] | None = None,
    exposures: int | Sequence[int] = 3,
    reference: bool = True,
    size: tuple[int, int] = (24, 32),
) -> Path:
    """Write brackets as PNG: ``<split>/inputs/<scene>/NN.png`` + ``<split>/reference/<scene>.png`` (sice
    layout) with ``reference``, else ``<split>/<scene>/NN.png``.

    ``scenes`` maps split folder -> count (default: 4 train, 2 test), named ``<split><index>``
    (``train00``); exposure NN has blue 20 * NN (darkest first), the reference blue 250.
    ``exposures`` is a count for every scene, or counts given to scenes in turn.
    """
    counts = cycle([exposures] if isinstance(exposures, int) else exposures)
    for split, count in (scenes or {"train": 4, "test": 2}).items():
        for index in range(count):
            name = f"{split}{index:02d}"
            folder = root / split / "inputs" / name if reference else root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(1, next(counts) + 1):
                iio.imwrite(folder / f"{number:02d}.png", bracket_pattern(20 * number, size))
            if reference:
                (root / split / "reference").mkdir(exist_ok=True)
                iio.imwrite(root / split / "reference" / f"{name}.png", bracket_pattern(250, size))
    return root


def epoch_signatures(loader) -> list[tuple[str, str, float]]:
    """What one pass over a loader drew, batch by batch: (first scene, its exposures, the target's sum)."""
    return [(b["scene"][0], b["evs"][0], b["target"].sum().item()) for b in loader]
