"""Sub-pixel refinement of a homography between two exposures: Gauss-Newton on their rank-normalised grey.

Each step warps the moving image onto the template's grid, maps its tones onto the template's by a monotone
curve fitted on the pixels both show unclipped, and solves for the small homography update that best explains
the remaining difference (forward compositional Lucas-Kanade, robust to outliers such as moving objects).
Only pixels with texture take part, so a step costs little more than the warp.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Steps per pyramid level, and the corner movement (pixels of that level) below which a level has converged.
STEPS, CONVERGED = 40, 0.01
#: Pixels nearer than this to a clipped one, or to the edge of what both images show, are left out.
MARGIN = 2
#: The textured pixels that take part: those whose gradient is above this quantile of the image's.
TEXTURE_QUANTILE = 0.5
#: The parameters each model updates, of the homography's eight (row by row, the last left at 1).
MODELS = {"translation": [2, 5], "affine": [0, 1, 2, 3, 4, 5], "homography": [0, 1, 2, 3, 4, 5, 6, 7]}
#: The fewest pixels unclipped in both images that a refinement needs.
MIN_PIXELS = 400
#: The blur (pixels) whose removal leaves the fine detail that ``agreement`` correlates.
DETAIL_SIGMA = 2.0
#: Tukey's constant, times the residuals' robust spread: residuals beyond it get no weight.
TUKEY = 4.685


class RefineFailed(Exception):
    """The two images share too little texture to refine on."""


def refine(
    template: np.ndarray, moving: np.ndarray, valid_t: np.ndarray, valid_m: np.ndarray, start: np.ndarray,
    model: str = "homography",
) -> tuple[np.ndarray, float]:
    """The homography from ``template``'s pixel coordinates to ``moving``'s (float32 images of one size, uint8
    masks of their unclipped pixels) that best aligns them, starting from ``start`` and updating it by a
    ``model`` of ``MODELS`` (fewer parameters are steadier when the start is far), and how well their fine
    detail then correlates (see ``agreement``); ``RefineFailed`` when they share too few textured pixels."""
    height, width = template.shape
    # parameters act on coordinates centred and scaled to about [-1, 1], so the eight are comparably sized
    scale = 2.0 / max(height, width)
    norm = np.array([[scale, 0, -scale * (width - 1) / 2], [0, scale, -scale * (height - 1) / 2], [0, 0, 1]])
    ys, xs = np.mgrid[0:height, 0:width]
    u, v = xs * scale + norm[0, 2], ys * scale + norm[1, 2]
    kernel = np.ones((2 * MARGIN + 1,) * 2, np.uint8)
    inside_t = cv2.erode(valid_t, kernel)
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]], dtype=np.float64).T
    homography = start / start[2, 2]
    curve = None
    for _ in range(STEPS):
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpPerspective(moving, homography, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        seen = cv2.warpPerspective(valid_m, homography, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        both = cv2.erode(seen, kernel) & inside_t
        if both.sum() < MIN_PIXELS:
            raise RefineFailed(f"only {int(both.sum())} pixels are unclipped in both")
        curve = curve or tone_curve(warped, template, both > 0)
        mapped = np.interp(warped, *curve).astype(np.float32)
        gx = cv2.Sobel(mapped, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        gy = cv2.Sobel(mapped, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
        strength = np.hypot(gx, gy)
        use = (both > 0) & (strength > np.quantile(strength[both > 0], TEXTURE_QUANTILE))
        if use.sum() < MIN_PIXELS // 2:
            raise RefineFailed(f"only {int(use.sum())} textured pixels are unclipped in both")
        x, y, dx, dy = u[use], v[use], gx[use] / scale, gy[use] / scale
        residual = (mapped - template)[use].astype(np.float64)
        jacobian = np.stack([dx * x, dx * y, dx, dy * x, dy * y, dy, -(dx * x + dy * y) * x, -(dx * x + dy * y) * y], axis=1)
        jacobian = jacobian[:, MODELS[model]]
        weights = tukey(residual)
        hessian = (jacobian * weights[:, None]).T @ jacobian
        step = np.zeros(9)
        step[MODELS[model]] = np.linalg.solve(hessian + 1e-9 * np.eye(len(hessian)), -(jacobian * weights[:, None]).T @ residual)
        update = np.linalg.inv(norm) @ (np.eye(3) + step.reshape(3, 3)) @ norm
        previous = homography
        homography = homography @ update
        homography /= homography[2, 2]
        if movement(previous, homography, corners) < CONVERGED:
            break
    return homography, agreement(mapped, template, use)


def agreement(image: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """The correlation, over ``mask``, of the two images' fine detail (each less its Gaussian blur): near 1 for
    the same scene aligned, near 0 for unrelated images or ones a few pixels apart."""
    detail = [(x - cv2.GaussianBlur(x, (0, 0), DETAIL_SIGMA))[mask].astype(np.float64) for x in (image, target)]
    return float(np.corrcoef(*detail)[0, 1])


def tone_curve(image: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of the monotone curve taking ``image``'s tones to ``target``'s: their quantiles over ``mask``."""
    levels = np.linspace(0, 1, 129)
    source = np.quantile(image[mask], levels) + np.arange(len(levels)) * 1e-7  # strictly increasing, for np.interp
    return source, np.quantile(target[mask], levels)


def tukey(residual: np.ndarray) -> np.ndarray:
    """Tukey's biweight of each residual, its scale the residuals' median absolute deviation."""
    spread = 1.4826 * np.median(np.abs(residual - np.median(residual))) + 1e-6
    ratio = residual / (TUKEY * spread)
    return np.where(np.abs(ratio) < 1, (1 - ratio**2) ** 2, 0.0)


def movement(before: np.ndarray, after: np.ndarray, corners: np.ndarray) -> float:
    """How far, in pixels, the image's corners move between the mappings ``before`` and ``after``."""
    a, b = before @ corners, after @ corners
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())
