"""Aligning a handheld bracket before fusion.

An ``align`` component estimates, per exposure, the homography from the reference exposure's pixel coordinates
to its own; every other exposure is resampled onto the reference's pixel grid (bilinear), and the bracket is cut
to the largest axis-aligned rectangle that every exposure covers. The borders only some exposures cover are cut
off rather than made up, so an aligned bracket is smaller than the photos by about the camera's movement; a
bracket found already aligned comes back untouched (the same pixels, no crop). An estimate its component calls
unreliable falls back to no alignment, with one warning line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import create
from ..errors import FusionkitError, param
from .deghost import best_exposed

#: Rows of the aligned image resampled at a time, bounding the sampling grid's memory.
STRIP_ROWS = 256


@dataclass
class AlignResult:
    """``exposures`` (1, K, 3, H', W') resampled onto the reference's grid and cut to ``box`` = (top, left, bottom,
    right) of the reference's pixels (bottom and right exclusive); ``homographies`` (K, 3, 3) from the reference's
    pixel coordinates to each exposure's; ``fell_back``: the estimate was unreliable (``note`` says why), so the
    exposures are returned unaligned."""

    exposures: Tensor
    homographies: np.ndarray
    box: tuple[int, int, int, int]
    reference: int
    fell_back: bool = False
    note: str = ""


def align_exposures(
    exposures: Tensor, name: str = "homography", reference: int | None = None, *, names: list[str] | None = None,
    log: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None,
) -> AlignResult:
    """Exposures (1, K, 3, H, W) in [0, 1] aligned to ``reference`` (None: :func:`best_exposed`) by the ``align``
    component ``name``; ``log`` gets one line per exposure (called by ``names``, else "exposure k of K") saying how
    it moved, and ``warn`` (else ``log``, as ``warning: ...``) one line on a fallback."""
    if exposures.dim() != 5 or exposures.shape[0] != 1 or exposures.shape[2] != 3:
        raise FusionkitError(f"align_exposures takes one bracket (1, K, 3, H, W); got {tuple(exposures.shape)}")
    stack = exposures[0]
    count = len(stack)
    if reference is not None and not 0 <= reference < count:
        raise FusionkitError(f"{param('reference')} must be an exposure index from 0 to {count - 1}; got {reference}")
    reference = best_exposed(stack) if reference is None else reference
    found = create("align", name)(stack, reference)
    homographies = np.asarray(found.homographies, dtype=np.float64)
    if homographies.shape != (count, 3, 3) or not np.isfinite(homographies).all():
        raise FusionkitError(f"align {name!r} gave homographies shaped {homographies.shape}; expected {(count, 3, 3)}, finite")
    say = log or (lambda line: None)
    labels = names or [f"exposure {k + 1} of {count}" for k in range(count)]
    fell_back = not found.reliable
    if fell_back:
        (warn or (lambda line: say(f"warning: {line}")))(
            f"align {name} of {', '.join(names) if names else 'the exposures'}: {found.note or 'unreliable estimate'}; "
            "fusing them unaligned")
        homographies = np.stack([np.eye(3)] * count)
    for k, homography in enumerate(homographies):
        say(f"align {name}: {labels[k]}: " + ("reference" if k == reference else describe(homography, stack.shape[-2:])))
    box = common_box(homographies, tuple(stack.shape[-2:]))
    aligned = torch.stack([warp(image, homography, box) for image, homography in zip(stack, homographies)])
    return AlignResult(aligned.unsqueeze(0), homographies, box, reference, fell_back, found.note)


def turned(shape: tuple[int, int], dx: float, dy: float, degrees: float) -> np.ndarray:
    """The homography that moves an image of ``shape`` (H, W) by (dx, dy) px and turns it by ``degrees`` about its
    centre, as a camera moved between two shots would (for simulating handheld brackets)."""
    height, width = shape
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    transform = np.eye(3)
    transform[:2, :2], transform[:2, 2] = rotation, centre + (dx, dy) - rotation @ centre
    return transform


def rms(found: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    """RMS distance (pixels) between where two homographies take a 20x20 grid of points spanning ``shape``: how far
    an estimate is from the truth over the whole image (the measure of docs/align.md)."""
    height, width = shape
    xs, ys = np.meshgrid(np.linspace(0, width - 1, 20), np.linspace(0, height - 1, 20))
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    a, b = found @ points, truth @ points
    return float(np.sqrt(np.mean(np.sum((a[:2] / a[2] - b[:2] / b[2]) ** 2, axis=0))))


def describe(homography: np.ndarray, shape: tuple[int, int]) -> str:
    """How ``homography`` moves the image's centre (pixels), turns (degrees, clockwise on screen) and scales it there."""
    height, width = shape
    centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    mapped = homography @ centre
    dx, dy = mapped[:2] / mapped[2] - centre[:2]
    # the Jacobian of the mapping at the centre: its rotation and mean scale
    jacobian = (homography[:2, :2] - np.outer(mapped[:2] / mapped[2], homography[2, :2])) / mapped[2]
    angle = math.degrees(math.atan2(jacobian[1, 0] - jacobian[0, 1], jacobian[0, 0] + jacobian[1, 1]))
    scale = math.sqrt(abs(np.linalg.det(jacobian)))
    return f"shift {dx:+.2f}, {dy:+.2f} px, rotation {angle:+.3f} deg, scale {scale:.4f}"


def common_box(homographies: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest axis-aligned rectangle (top, left, bottom, right; bottom and right exclusive) of the reference's
    pixels that every exposure covers: each pixel maps, by every homography, inside that exposure's frame."""
    height, width = shape
    lows, highs = np.zeros(height), np.full(height, width - 1.0)
    for homography in homographies:
        low, high = _covered_columns(homography / homography[2, 2], height, width)
        lows, highs = np.maximum(lows, low), np.minimum(highs, high)
    first, last = np.ceil(lows - 1e-9).astype(int), np.floor(highs + 1e-9).astype(int)
    best, box = 0, (0, 0, 0, 0)
    for top in range(height):
        left, right = np.maximum.accumulate(first[top:]), np.minimum.accumulate(last[top:])
        areas = np.maximum(right - left + 1, 0) * np.arange(1, height - top + 1)
        rows = int(areas.argmax())
        if areas[rows] > best:
            best, box = int(areas[rows]), (top, int(left[rows]), top + rows + 1, int(right[rows]) + 1)
    if best == 0:
        raise FusionkitError("the exposures, as aligned, share no pixel: they show different scenes")
    return box


def _covered_columns(homography: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row y of the reference, the columns [low, high] whose pixels ``homography`` maps inside a frame of
    (height, width): each frame edge bounds x linearly (a near-identity homography keeps its denominator positive)."""
    y = np.arange(height, dtype=np.float64)
    low, high = np.zeros(height), np.full(height, width - 1.0)
    h = homography
    for row, limit in ((0, width - 1.0), (1, height - 1.0)):
        # 0 <= (h[row] . p) / (h[2] . p) <= limit, each side written as a * x + b >= 0
        for a, b in ((h[row, 0], h[row, 1] * y + h[row, 2]),
                     (limit * h[2, 0] - h[row, 0], limit * (h[2, 1] * y + h[2, 2]) - h[row, 1] * y - h[row, 2])):
            if abs(a) < 1e-12:
                high = np.where(b < 0, -1.0, high)
            elif a > 0:
                low = np.maximum(low, -b / a)
            else:
                high = np.minimum(high, -b / a)
    return low, high


def warp(image: Tensor, homography: np.ndarray, box: tuple[int, int, int, int], mode: str = "bilinear") -> Tensor:
    """``image`` (3, H, W) resampled onto the reference's pixels inside ``box``: pixel p takes the image's value
    at ``homography`` @ p (``mode``: grid_sample's ``bilinear`` or ``bicubic``); the identity just crops."""
    top, left, bottom, right = box
    if np.array_equal(homography, np.eye(3)):
        return image[:, top:bottom, left:right]
    height, width = image.shape[-2:]
    xs = np.arange(left, right, dtype=np.float64)
    strips = []
    for start in range(top, bottom, STRIP_ROWS):
        ys = np.arange(start, min(start + STRIP_ROWS, bottom), dtype=np.float64)
        x, y = np.meshgrid(xs, ys)
        mapped = homography @ np.stack([x.ravel(), y.ravel(), np.ones(x.size)])
        u, v = mapped[0] / mapped[2], mapped[1] / mapped[2]
        grid = np.stack([u / (width - 1) * 2 - 1, v / (height - 1) * 2 - 1], axis=-1).reshape(1, *x.shape, 2)
        grid = torch.from_numpy(grid).to(device=image.device, dtype=torch.float32)
        sampled = F.grid_sample(image[None].float(), grid, mode=mode, padding_mode="border", align_corners=True)[0]
        strips.append(sampled.clamp_(0, 1).to(image.dtype))
    return torch.cat(strips, dim=1)
