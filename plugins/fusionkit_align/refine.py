"""Sub-pixel refinement of a homography between two exposures: Gauss-Newton on their rank-normalised grey.

Each step warps the moving image onto the template's grid and compares it with the template as the moving
exposure would show it: the template's tones through a monotone curve matching the two histograms, which
saturates where the moving exposure clips, so a nearly white or black exposure still aligns on what it shows.
It then solves for the small update of a model (translation up to a full homography) that best explains the
difference (forward compositional Lucas-Kanade, robust to outliers such as moving objects). Only pixels with
texture in both take part, so a step costs little more than the warp; ``uncertainty`` says how well they pin
the model down.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

#: Steps per refinement, and the corner movement (pixels) below which a refinement has converged.
STEPS, CONVERGED = 40, 0.01
#: Pixels nearer than this to one the template shows clipped, or to the moving image's edge, are left out.
MARGIN = 2
#: The textured pixels that take part: those whose gradient, in each image, is above this quantile of its own.
TEXTURE_QUANTILE = 0.5
#: Each model's parameters as combinations of the homography's eight (row by row, the last left at 1).
MODELS = {
    "translation": np.eye(8)[[2, 5]],
    "similarity": np.array([[1, 0, 0, 0, 1, 0, 0, 0], [0, -1, 0, 1, 0, 0, 0, 0], np.eye(8)[2], np.eye(8)[5]], dtype=float),
    "homography": np.eye(8),
}
#: The fewest pixels a refinement needs: in view and unclipped in the template, and of those, textured.
MIN_PIXELS = 400
#: The blur (pixels) whose removal leaves the fine detail that ``agreement`` correlates.
DETAIL_SIGMA = 2.0
#: Tukey's constant, times the residuals' robust spread: residuals beyond it get no weight.
TUKEY = 4.685
#: Pixels a quantile or a robust spread is estimated on, at most about.
SAMPLES = 50000


class RefineFailed(Exception):
    """The two images share too little texture to refine on."""


@dataclass
class Pair:
    """Two exposures at one size, as float32 rank-normalised grey, and the uint8 mask of the template's unclipped pixels."""

    template: np.ndarray
    moving: np.ndarray
    valid: np.ndarray

    def compared(self, homography: np.ndarray, predicted: np.ndarray | None = None):
        """The moving image warped by ``homography`` onto the template's grid and its gradients (x, y); the
        template as the moving exposure shows it (``predicted``, else made here through a tone curve fitted on
        the pixels in view); the indices (flat) of the textured pixels that take part. ``RefineFailed`` when
        too few pixels are left."""
        height, width = self.template.shape
        kernel = np.ones((2 * MARGIN + 1,) * 2, np.uint8)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpPerspective(self.moving, homography, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        seen = cv2.warpPerspective(np.ones_like(self.valid), homography, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        inside = (cv2.erode(seen, kernel) & self.inside) > 0
        if inside.sum() < MIN_PIXELS:
            raise RefineFailed(f"only {int(inside.sum())} pixels are in view and unclipped")
        if predicted is None:
            predicted = np.interp(self.template, *tone_curve(self.template, warped, inside)).astype(np.float32)
        gx = cv2.Sobel(warped, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        gy = cv2.Sobel(warped, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
        # where both are clipped alike nothing can be seen, however the two are aligned
        blank = ((warped >= 1) & (predicted >= 1)) | ((warped <= 0) & (predicted <= 0))
        use = np.flatnonzero(inside & ~blank & self.textured & textured(np.hypot(gx, gy), inside))
        if len(use) < MIN_PIXELS // 2:
            raise RefineFailed(f"only {len(use)} textured pixels are in view and unclipped")
        return warped, gx, gy, predicted, use

    @cached_property
    def inside(self) -> np.ndarray:
        """The template's unclipped pixels, less those within ``MARGIN`` of a clipped one."""
        return cv2.erode(self.valid, np.ones((2 * MARGIN + 1,) * 2, np.uint8))

    @cached_property
    def textured(self) -> np.ndarray:
        """Where the template has texture (see ``textured``) among its unclipped pixels."""
        gx = cv2.Sobel(self.template, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        gy = cv2.Sobel(self.template, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
        return textured(np.hypot(gx, gy), self.inside > 0)

    @property
    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See ``coordinates``, for the template's shape."""
        return coordinates(self.template.shape)

    def agreement(self, homography: np.ndarray, predicted: np.ndarray | None = None) -> float:
        """How well the two agree once the moving image is warped by ``homography`` (see ``agreement``)."""
        warped, _, _, predicted, use = self.compared(homography, predicted)
        return agreement(warped, predicted, use)


def refine(pair: Pair, start: np.ndarray, model: str = "homography") -> tuple[np.ndarray, float, float]:
    """The homography from ``pair``'s template pixel coordinates to its moving image's that best aligns them,
    starting from ``start`` and updating it by a ``model`` of ``MODELS``; how well their fine detail then
    correlates (see ``agreement``); and its ``uncertainty`` in pixels. ``RefineFailed`` when they share too
    few textured pixels."""
    height, width = pair.template.shape
    norm, u, v = pair.coordinates
    scale = norm[0, 0]
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]], dtype=np.float64).T
    basis = MODELS[model]
    homography = start / start[2, 2]
    predicted = None
    for _ in range(STEPS):
        warped, gx, gy, predicted, use = pair.compared(homography, predicted)
        x, y, dx, dy = u[use], v[use], gx.ravel()[use] / np.float32(scale), gy.ravel()[use] / np.float32(scale)
        residual = warped.ravel()[use] - predicted.ravel()[use]
        along = dx * x + dy * y
        # float32 per pixel (half the memory traffic); the 8x8 system is summed by BLAS and solved in float64
        jacobian = np.stack([dx * x, dx * y, dx, dy * x, dy * y, dy, -along * x, -along * y], axis=1) @ basis.T.astype(np.float32)
        weights = tukey(residual)
        weighted = jacobian * weights[:, None]
        hessian = (weighted.T @ jacobian).astype(np.float64)
        solved = np.linalg.solve(hessian + 1e-9 * np.eye(len(hessian)), -(weighted.T @ residual).astype(np.float64))
        update = np.linalg.inv(norm) @ (np.eye(3) + np.append(basis.T @ solved, 0).reshape(3, 3)) @ norm
        previous = homography
        homography = homography @ update
        homography /= homography[2, 2]
        if movement(previous, homography, corners) < CONVERGED:
            break
    variance = float((weights * residual.astype(np.float64) ** 2).sum() / max(float(weights.sum()) - len(hessian), 1.0))
    return homography, pair.agreement(homography, predicted), uncertainty(hessian, variance, basis, norm @ corners) / scale


@lru_cache(maxsize=8)
def coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matrix taking pixel coordinates of an image of ``shape`` (H, W) to ones centred and scaled to about
    [-1, 1] (so the eight parameters are comparably sized), and every pixel's coordinates (x, y) so, flat
    (float32; shared by every pair of that shape, so never written to)."""
    height, width = shape
    scale = 2.0 / max(height, width)
    norm = np.array([[scale, 0, -scale * (width - 1) / 2], [0, scale, -scale * (height - 1) / 2], [0, 0, 1]])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xs * scale + norm[0, 2]).ravel(), (ys * scale + norm[1, 2]).ravel()
    u.flags.writeable = v.flags.writeable = False
    return norm, u, v


def uncertainty(hessian: np.ndarray, variance: float, basis: np.ndarray, corners: np.ndarray) -> float:
    """One standard deviation, in the normalised coordinates of ``corners`` (3, 4), of where the worst corner
    lands, from the Gauss-Newton covariance of the model's parameters (``variance`` the residuals'): large where
    too little texture, or texture on one side only, pins the model down."""
    covariance = basis.T @ (variance * np.linalg.pinv(hessian)) @ basis
    worst = 0.0
    for u, v, _ in corners.T:
        along_x = np.array([u, v, 1, 0, 0, 0, -u * u, -u * v])
        along_y = np.array([0, 0, 0, u, v, 1, -u * v, -v * v])
        worst = max(worst, float(np.sqrt(along_x @ covariance @ along_x + along_y @ covariance @ along_y)))
    return worst


def textured(strength: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Where the gradient ``strength`` is above its ``TEXTURE_QUANTILE`` over ``mask`` (estimated on every 7th pixel)."""
    return strength > np.quantile(strength.ravel()[::7][mask.ravel()[::7]], TEXTURE_QUANTILE)


def agreement(image: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """The correlation, over the pixels ``mask`` (flat indices), of the two images' fine detail (each less its Gaussian blur): near 1 for
    the same scene aligned, near 0 for unrelated images or ones a few pixels apart, 0 where either is flat."""
    detail = [(x - cv2.GaussianBlur(x, (0, 0), DETAIL_SIGMA)).ravel()[mask].astype(np.float64) for x in (image, target)]
    detail = [d - d.mean() for d in detail]
    spread = float(np.sqrt((detail[0] ** 2).sum() * (detail[1] ** 2).sum()))
    return float((detail[0] * detail[1]).sum() / spread) if spread > 0 else 0.0


def tone_curve(image: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of the monotone curve taking ``image``'s tones to ``target``'s: their quantiles over ``mask``
    (on at most about SAMPLES of its pixels, evenly spread: the curve's 129 knots need no more)."""
    levels = np.linspace(0, 1, 129)
    image, target = sampled(image[mask]), sampled(target[mask])
    source = np.quantile(image, levels) + np.arange(len(levels)) * 1e-7  # strictly increasing, for np.interp
    return source, np.quantile(target, levels)


def sampled(values: np.ndarray) -> np.ndarray:
    """Every n-th of ``values`` (flat), n chosen to leave about SAMPLES of them: for quantiles and spreads."""
    return values[:: max(1, values.size // SAMPLES)]


def tukey(residual: np.ndarray) -> np.ndarray:
    """Tukey's biweight of each residual, its scale the residuals' median absolute deviation."""
    some = sampled(residual)
    spread = 1.4826 * np.median(np.abs(some - np.median(some))) + 1e-6
    ratio = residual / (TUKEY * spread)
    return np.where(np.abs(ratio) < 1, (1 - ratio**2) ** 2, 0.0)


def movement(before: np.ndarray, after: np.ndarray, corners: np.ndarray) -> float:
    """How far, in pixels, the image's corners move between the mappings ``before`` and ``after``."""
    a, b = before @ corners, after @ corners
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())
