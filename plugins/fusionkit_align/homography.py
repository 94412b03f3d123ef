"""``homography``: a start from feature matches on rank-normalised grey (or a searched translation), refined densely to sub-pixel."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

import cv2
import numpy as np
from torch import Tensor

from fusionkit.api import Alignment, ComponentOptionError

from .chain import PairFailed, apply, chain
from .images import equalised, grey, in_full, shrunk, unclipped
from .refine import Pair, RefineFailed, refine, tone_curve

#: Lowe's ratio test: a match is kept when its descriptor is this much closer than the second best.
RATIO = 0.8
#: RANSAC's inlier distance, in pixels of the matching size.
RANSAC_PIXELS = 1.5
#: The refinement's coarse levels: the refining size (the photo's long side where smaller) divided by the first, and
#: the model updated there.
COARSE = ((8, "translation"), (4, "similarity"), (2, "similarity"))
#: At the refining size a homography is refined, kept when the texture pins its corners down to this many pixels
#: (one standard deviation), else a similarity: texture on one side only, or too little, cannot fix a perspective.
MAX_UNCERTAINTY = 0.1
#: Long side (pixels) at which a translation is searched for when feature matches give no good start.
SEARCH_SIZE = 256
#: Two exposures agree once aligned when their fine detail correlates at least this well (see ``refine``):
#: aligned pairs of the test brackets reach 0.58 and more, unrelated pictures stay under 0.1.
MIN_AGREEMENT = 0.3
#: SIFT's contrast threshold: low, since a rank-normalised dark or bright exposure has little contrast.
CONTRAST = 0.01
#: Keypoints this close (pixels of the matching size) to a clipped pixel are dropped: clipping edges move with exposure.
CLIP_MARGIN = 1


@dataclass
class View:
    """One exposure as the aligner compares it, each part made when first asked for."""

    exposure: Tensor
    match_size: int
    refine_size: int
    features: int
    levels: dict = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def normalised(self) -> np.ndarray:
        """Full-size rank-normalised grey."""
        return equalised(grey(self.exposure), self.valid > 0)

    @cached_property
    def valid(self) -> np.ndarray:
        """Full-size float32 mask: 1 where the exposure is not clipped."""
        return unclipped(self.exposure).astype(np.float32)

    @cached_property
    def keypoints(self) -> tuple[np.ndarray, np.ndarray]:
        """SIFT keypoint positions (N, 2) in full-size pixels and their descriptors (N, 128), away from clipping."""
        image, small_from_full = shrunk(self.normalised, self.match_size)
        mask, _ = shrunk(self.valid, self.match_size)
        mask = cv2.erode((mask > 0.99).astype(np.uint8), np.ones((2 * CLIP_MARGIN + 1,) * 2, np.uint8))
        found, descriptors = cv2.SIFT_create(self.features, contrastThreshold=CONTRAST).detectAndCompute(np.round(image * 255).astype(np.uint8), mask)
        if descriptors is None:
            return np.zeros((0, 2)), np.zeros((0, 128), np.float32)
        points = np.array([k.pt for k in found], dtype=np.float64).reshape(-1, 2)
        return apply(np.linalg.inv(small_from_full), points), descriptors

    def level(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The normalised grey and the mask of unclipped pixels at long side ``size``, and the matrix taking
        full-size pixel coordinates there (made once per size: every pair and start of this exposure shares it)."""
        if size not in self.levels:
            image, small_from_full = shrunk(self.normalised, size)
            mask, _ = shrunk(self.valid, size)
            self.levels[size] = image, (mask > 0.5).astype(np.uint8), small_from_full
        return self.levels[size]


class FeatureAlign:
    """SIFT matches on rank-normalised grey for a start, dense sub-pixel refinement to a homography, chained through neighbours."""

    def __init__(
        self, match_size: int = 1024, refine_size: int = 1024, features: int = 1000, min_inliers: int = 8,
        max_shift: float = 0.1,
    ) -> None:
        for name, value, least in (("match_size", match_size, 64), ("refine_size", refine_size, 64),
                                   ("features", features, 16), ("min_inliers", min_inliers, 8)):
            if not isinstance(value, int) or value < least:
                raise ComponentOptionError(f"align 'homography': {name} must be a whole number >= {least}; got {value!r}")
        if not 0 < max_shift <= 1:
            raise ComponentOptionError(f"align 'homography': max_shift must be a fraction of the diagonal in (0, 1]; got {max_shift!r}")
        self.match_size, self.refine_size, self.features = match_size, refine_size, features
        self.min_inliers, self.max_shift = min_inliers, max_shift

    def __call__(self, exposures: Tensor, reference: int) -> Alignment:
        views = [View(e, self.match_size, self.refine_size, self.features) for e in exposures]
        return chain(exposures, reference, lambda template, moving: self.pair(views[template], views[moving]))

    def pair(self, template: View, moving: View) -> np.ndarray:
        """The homography from ``template``'s pixel coordinates to ``moving``'s, or ``PairFailed``: refined from
        coarse to fine from the start feature matches give (else, or when that ends in disagreement, from a
        searched translation), then checked for a plausible movement and for the two agreeing once aligned."""
        best, best_agreement = None, -1.0
        finest = min(self.refine_size, max(template.normalised.shape))
        pairs: dict[int, tuple[Pair, np.ndarray]] = {}

        def compared(size: int) -> tuple[Pair, np.ndarray]:
            if size not in pairs:
                pairs[size] = compare(template, moving, size)
            return pairs[size]

        for start in self.starts(template, moving):
            warp, agreement = start, -1.0
            for divisor, model in COARSE:
                pair, small_from_full = compared(max(64, finest // divisor))
                try:
                    found, agreement, _ = refine(pair, small_from_full @ warp @ np.linalg.inv(small_from_full), model)
                except RefineFailed:
                    continue  # too little detail survives at this size: the finer one may have enough
                warp = in_full(found, small_from_full)
            if best is None or agreement > best_agreement:
                best, best_agreement = warp, agreement
            if agreement >= MIN_AGREEMENT:
                break
        pair, small_from_full = compared(finest)
        start = small_from_full @ best @ np.linalg.inv(small_from_full)
        try:
            found, agreement, uncertainty = refine(pair, start, "homography")
            if uncertainty / small_from_full[0, 0] > MAX_UNCERTAINTY:
                found, agreement, _ = refine(pair, start, "similarity")
        except RefineFailed as failure:
            raise PairFailed(str(failure)) from None
        warp = in_full(found, small_from_full)
        problem = extreme(warp, template.normalised.shape, self.max_shift)
        if problem:
            raise PairFailed(problem)
        if agreement < MIN_AGREEMENT:
            raise PairFailed(f"the two disagree once aligned (detail correlation {agreement:.2f}, need {MIN_AGREEMENT})")
        return warp

    def starts(self, template: View, moving: View) -> Iterator[np.ndarray]:
        """Starting homographies to refine, the cheapest first: a translation searched for (a handheld bracket
        mostly shifts), then, should that end in disagreement, the one feature matches agree on, if any."""
        yield searched(template, moving, self.max_shift)
        try:
            yield self.matched(template, moving)
        except PairFailed:
            pass

    def matched(self, template: View, moving: View) -> np.ndarray:
        """A start for refining: the similarity (RANSAC) that at least ``min_inliers`` of the two views' SIFT
        matches agree on, at full size; a similarity, as the coarse levels refine no more than one."""
        source, target = matches(template.keypoints, moving.keypoints)
        if len(source) < self.min_inliers:
            raise PairFailed(f"{len(source)} features match (need {self.min_inliers})")
        shape = template.normalised.shape
        pixels = RANSAC_PIXELS * max(shape) / min(self.match_size, max(shape))
        similarity, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=pixels,
                                                         maxIters=10000, confidence=0.9999)
        agreeing = 0 if inliers is None else int(inliers.sum())
        if similarity is None or agreeing < self.min_inliers:
            raise PairFailed(f"{agreeing} feature matches agree on one movement (need {self.min_inliers})")
        similarity = np.vstack([similarity, [0.0, 0.0, 1.0]])
        problem = extreme(similarity, shape, self.max_shift)
        if problem:
            raise PairFailed(problem)
        return similarity


def matches(features_t: tuple[np.ndarray, np.ndarray], features_m: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, 2) in each image of the keypoints whose descriptors are each other's nearest, and clearly
    nearer than the second nearest (Lowe's ratio test)."""
    (points_t, descriptors_t), (points_m, descriptors_m) = features_t, features_m
    if min(len(points_t), len(points_m)) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    back = {m[0].queryIdx: m[0].trainIdx for m in matcher.knnMatch(descriptors_m, descriptors_t, k=1) if m}
    pairs = [(m[0].queryIdx, m[0].trainIdx) for m in matcher.knnMatch(descriptors_t, descriptors_m, k=2)
             if len(m) == 2 and m[0].distance < RATIO * m[1].distance and back.get(m[0].trainIdx) == m[0].queryIdx]
    return points_t[[t for t, _ in pairs]].reshape(-1, 2), points_m[[m for _, m in pairs]].reshape(-1, 2)


def searched(template: View, moving: View, max_shift: float) -> np.ndarray:
    """A start that needs no features: the translation, within ``max_shift`` of the diagonal, at which the template
    (its tones mapped to the moving view's) best correlates with the moving view, at long side ``SEARCH_SIZE``."""
    (image_t, _, small_from_full), (image_m, _, _) = template.level(SEARCH_SIZE), moving.level(SEARCH_SIZE)
    height, width = image_t.shape
    limit = max(0, min(int(np.ceil(max_shift * np.hypot(height, width))), (min(height, width) - 8) // 2))
    predicted = np.interp(image_t, *tone_curve(image_t, image_m, np.ones(image_t.shape, bool))).astype(np.float32)
    scores = cv2.matchTemplate(image_m, predicted[limit:height - limit, limit:width - limit], cv2.TM_CCOEFF_NORMED)
    y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return in_full(np.array([[1.0, 0.0, x - limit], [0.0, 1.0, y - limit], [0.0, 0.0, 1.0]]), small_from_full)


def extreme(homography: np.ndarray, shape: tuple[int, int], max_shift: float) -> str | None:
    """Why ``homography`` cannot be a handheld bracket's movement over an image of ``shape`` (H, W), or None: a
    corner moved further than ``max_shift`` of the diagonal, a scale change beyond 1.5x, or a fold."""
    height, width = shape
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)
    moved = apply(homography, corners)
    diagonal = float(np.hypot(width, height))
    furthest = float(np.linalg.norm(moved - corners, axis=1).max())
    if not np.isfinite(moved).all() or furthest > max_shift * diagonal:
        return f"the transform found moves a corner {furthest:.0f} px, over {max_shift:.0%} of the diagonal"
    edges = np.roll(moved, -1, axis=0) - moved
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (turns > 0).all():
        return "the transform found folds the image"
    area = 0.5 * abs(np.sum(moved[:, 0] * np.roll(moved, -1, axis=0)[:, 1] - moved[:, 1] * np.roll(moved, -1, axis=0)[:, 0]))
    if not 1 / 2.25 < area / ((width - 1) * (height - 1)) < 2.25:
        return f"the transform found scales the image's area by {area / ((width - 1) * (height - 1)):.2f}"
    return None


def compare(template: View, moving: View, size: int) -> tuple[Pair, np.ndarray]:
    """The two views at long side ``size`` as a ``Pair`` to refine, and the matrix taking full-size pixel coordinates there."""
    (image_t, mask_t, small_from_full), (image_m, _, _) = template.level(size), moving.level(size)
    return Pair(image_t, image_m, mask_t), small_from_full
