"""A tiny synthetic dataset in the exposure-errors layout, for tests that need real files fast."""

from __future__ import annotations

from pathlib import Path

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
