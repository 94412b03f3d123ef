"""Picture grids a user looks at: inputs, each model's output and the ground truth side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..files import write_atomic


def image_grid(rows: Sequence[Sequence[torch.Tensor]], pad: int = 4) -> np.ndarray:
    """Tile rows of (3, H, W) images in [0, 1] into one uint8 HxWx3 array with white gaps."""
    h = max(img.shape[-2] for row in rows for img in row)
    w = max(img.shape[-1] for row in rows for img in row)
    cols = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            array = (img.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            if array.shape[2] == 1:
                array = np.repeat(array, 3, axis=2)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y : y + array.shape[0], x : x + array.shape[1]] = array
    return canvas


def save_grid(path: Path, rows: Sequence[Sequence[torch.Tensor]]) -> Path:
    """The grid as a picture in the format its name says (.png, .jpg or .jpeg), written atomically."""
    import imageio.v3 as iio

    grid = image_grid(rows)
    extension = ".jpg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else ".png"
    return write_atomic(path, lambda tmp: iio.imwrite(tmp, grid, extension=extension))
