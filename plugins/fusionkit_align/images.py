"""The views of an exposure the aligners compare: grey, its clipped pixels, and a rank-normalised copy at a working size.

Exposures of one scene differ by a monotone tone curve (and clipping), so each grey image is replaced by its
pixels' ranks (histogram equalisation): two exposures then look alike wherever neither is clipped.
"""

from __future__ import annotations

import cv2
import numpy as np
from torch import Tensor

from fusionkit.api import GRAY

#: A pixel is clipped where its grey is at most LOW or at least HIGH: it shows no detail to align on.
LOW, HIGH = 0.02, 0.98
#: Grey levels told apart when ranking pixels (a 16-bit image's).
LEVELS = 65536


def grey(exposure: Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (H, W) float32 BT.601 luma, on the CPU."""
    r, g, b = exposure.detach().float().cpu().numpy()
    return r * GRAY[0] + g * GRAY[1] + b * GRAY[2]


def unclipped(exposure: Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (H, W) bool: True where the grey is neither black nor white (a pixel with one
    channel clipped still shows detail in the others, which a nearly white exposure may need to align on)."""
    image = grey(exposure)
    return (image > LOW) & (image < HIGH)


def equalised(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> float32 in [0, 1]: each pixel's rank among the ``valid`` pixels' values (ties,
    to 1/LEVELS, share the highest rank), so the unclipped tones spread over the whole range however much of the
    image is clipped. Counted in a histogram, not sorted: linear in the pixels."""
    levels = np.minimum((image * (LEVELS - 1) + 0.5).astype(np.int32), LEVELS - 1)
    counts = np.bincount((levels[valid] if valid.any() else levels).ravel(), minlength=LEVELS)
    ranks = np.cumsum(counts)
    return (ranks[levels] / ranks[-1]).astype(np.float32)


def shrunk(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W) with its long side brought down to ``size`` by area averaging (unchanged when it is not
    larger), and the 3x3 matrix taking full-size pixel coordinates to the result's (pixel centres kept)."""
    height, width = image.shape
    scale = size / max(height, width)
    if scale >= 1:
        return image, np.eye(3)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    sx, sy = new[0] / width, new[1] / height
    small_from_full = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return cv2.resize(image, new, interpolation=cv2.INTER_AREA), small_from_full


def in_full(homography: np.ndarray, small_from_full: np.ndarray) -> np.ndarray:
    """A homography between two images shrunk by ``small_from_full`` as one between the full-size images."""
    return np.linalg.inv(small_from_full) @ homography @ small_from_full
