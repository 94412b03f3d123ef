"""Alignment through neighbours: each exposure is matched to the next one toward the reference in brightness order
(large exposure gaps match poorly directly), and the pairwise homographies are chained."""

from __future__ import annotations

from typing import Callable

import numpy as np
from torch import Tensor

from fusionkit.api import Alignment

#: An estimate that moves no point of the image by more than this many pixels is returned as the identity, so
#: exposures already aligned (a tripod) stay bit-identical: resampling by a fraction of a pixel would only blur
#: them and crop their borders, while the estimate itself is accurate to about 0.1 px (docs/align.md).
IDENTITY_TOLERANCE = 0.25


class PairFailed(Exception):
    """Two exposures could not be aligned; the message says why in a few words."""


def chain(exposures: Tensor, reference: int, pair: Callable[[int, int], np.ndarray]) -> Alignment:
    """Homographies from the reference to every exposure of ``exposures`` (K, 3, H, W), built outward from the
    reference by ``pair(template, moving)``: the homography from exposure ``template``'s pixel coordinates to
    ``moving``'s, or ``PairFailed``. A pair that fails is retried against the aligned exposures nearer the
    reference; when none is left the result is unreliable, naming the exposure and why."""
    count = len(exposures)
    found = {reference: np.eye(3)}
    order = sorted(range(count), key=lambda k: exposures[k].float().mean().item())
    at = order.index(reference)
    for side in (order[at + 1:], order[:at][::-1]):
        for step, moving in enumerate(side):
            reasons = []
            for template in [*side[:step][::-1], reference]:
                try:
                    homography = pair(template, moving)
                except PairFailed as failure:
                    reasons.append(str(failure))
                    continue
                found[moving] = identity_if_near(homography @ found[template], exposures.shape[-2:])
                break
            else:
                note = f"exposure {moving + 1} of {count} would not align: {reasons[0]}"
                return Alignment(np.stack([np.eye(3)] * count), reliable=False, note=note)
    return Alignment(np.stack([found[k] for k in range(count)]))


def identity_if_near(homography: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``homography`` (3, 3) normalised, or exactly the identity when it moves no point of an image of ``shape``
    (H, W) by more than ``IDENTITY_TOLERANCE`` pixels."""
    homography = homography / homography[2, 2]
    return np.eye(3) if largest_shift(homography, shape) <= IDENTITY_TOLERANCE else homography


def largest_shift(homography: np.ndarray, shape: tuple[int, int]) -> float:
    """How far, in pixels, ``homography`` moves the furthest of a 5x5 grid of points spanning an image of ``shape``."""
    points = grid(shape, 5)
    return float(np.linalg.norm(apply(homography, points) - points, axis=1).max())


def grid(shape: tuple[int, int], steps: int) -> np.ndarray:
    """(steps * steps, 2) pixel coordinates (x, y) evenly spanning an image of ``shape`` (H, W), corners included."""
    height, width = shape
    xs, ys = np.meshgrid(np.linspace(0, width - 1, steps), np.linspace(0, height - 1, steps))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped by a 3x3 homography."""
    mapped = np.c_[points, np.ones(len(points))] @ homography.T
    return mapped[:, :2] / mapped[:, 2:]
