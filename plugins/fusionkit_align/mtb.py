"""``mtb``: median threshold bitmaps (Ward 2003), translations only, chained through neighbours.

Each exposure is cut at one percentile of its grey into a bitmap, which does not change with exposure. Ward cuts at
the median; here the percentile is the middle of the range neither exposure of the pair clips, so that a nearly
white or black exposure is cut where it still shows something. The shift that makes the bitmaps disagree least
(away from pixels near the cut, which noise flips) is searched for over the whole range on the coarsest level that
still shows the scene (where no shift stands out, the two show nothing alike), then refined by one pixel per
finer level; the tip of the V the disagreements make around the best shift gives the fraction of a pixel.
"""

from __future__ import annotations

import cv2
import numpy as np
from torch import Tensor

from fusionkit.api import Alignment, ComponentOptionError

from .chain import PairFailed, chain
from .images import HIGH, LOW, grey

#: The fewest pixels on the short side of the coarsest level, searched over the whole range (fewer show no structure).
COARSEST = 32
#: There the best shift must make the bitmaps disagree less than this fraction of the median shift's: aligned
#: exposures of the test brackets reach 0.1 or less, unrelated pictures and noise 0.7 or more.
CLEAR = 0.5


class MTBAlign:
    """Median threshold bitmaps (Ward 2003): translations to a fraction of a pixel, robust to exposure, blind to rotation."""

    def __init__(self, max_bits: int = 6, exclude_range: int = 4) -> None:
        if not isinstance(max_bits, int) or not 1 <= max_bits <= 10:
            raise ComponentOptionError(f"align 'mtb': max_bits must be a whole number from 1 to 10; got {max_bits!r}")
        if not isinstance(exclude_range, int) or exclude_range < 0:
            raise ComponentOptionError(f"align 'mtb': exclude_range must be a whole number >= 0; got {exclude_range!r}")
        self.max_bits, self.exclude_range = max_bits, exclude_range

    def __call__(self, exposures: Tensor, reference: int) -> Alignment:
        images = [np.round(grey(e) * 255).astype(np.uint8) for e in exposures]
        return chain(exposures, reference, lambda template, moving: self.pair(images[template], images[moving]))

    def pair(self, template: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """The translation (as a homography) from ``template``'s pixel coordinates to ``moving``'s, or ``PairFailed``
        when no shift stands out or the best reaches the search limit (2 ** max_bits - 1 pixels)."""
        percentile = cut(template, moving)
        limit = 2 ** self.max_bits - 1
        # the coarsest level keeps COARSEST pixels on its short side, and is searched over the whole range there
        levels = int(np.clip(np.floor(np.log2(min(template.shape) / COARSEST)), 0, self.max_bits - 1))
        pyramids = [[image] for image in (template, moving)]
        for _ in range(levels):
            for pyramid in pyramids:
                pyramid.append(cv2.pyrDown(pyramid[-1]))
        reach = -(-limit // 2 ** levels)
        dx = dy = 0
        for level, images in enumerate(zip(*(reversed(p) for p in pyramids))):
            compared = Bitmaps(*images, percentile, self.exclude_range)
            dx, dy = 2 * dx, 2 * dy
            shifts = [(dx + i, dy + j) for j in range(-reach, reach + 1) for i in range(-reach, reach + 1)]
            scores = [compared(*shift) for shift in shifts]
            if level == 0 and min(scores) > CLEAR * float(np.median(scores)):
                raise PairFailed(f"the bitmaps disagree about as much at every shift ({min(scores):.2f} at best, "
                                 f"{float(np.median(scores)):.2f} typically)")
            dx, dy = min(shifts, key=lambda shift: (compared(*shift), abs(shift[0] - dx) + abs(shift[1] - dy)))
            reach = 1
        if max(abs(dx), abs(dy)) >= limit:
            raise PairFailed(f"the bitmaps' best shift ({dx}, {dy}) px is at the search limit of {limit} px")
        x = dx + vertex(compared(dx - 1, dy), compared(dx, dy), compared(dx + 1, dy))
        y = dy + vertex(compared(dx, dy - 1), compared(dx, dy), compared(dx, dy + 1))
        return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


class Bitmaps:
    """Two images cut at one percentile; called with a shift, how much they disagree there (remembered)."""

    def __init__(self, template: np.ndarray, moving: np.ndarray, percentile: float, exclude: int) -> None:
        self.template, self.moving = bitmaps(template, percentile, exclude), bitmaps(moving, percentile, exclude)
        self.scores: dict[tuple[int, int], float] = {}

    def __call__(self, dx: int, dy: int) -> float:
        if (dx, dy) not in self.scores:
            self.scores[dx, dy] = disagreement(*self.template, *self.moving, dx, dy)
        return self.scores[dx, dy]


def vertex(before: float, best: float, after: float) -> float:
    """Where, between -0.5 and 0.5, the V through three disagreements one pixel apart (the middle the least) has its
    tip: the share of pixels that disagree grows linearly with the distance from the true shift."""
    slope = max(before, after) - best
    return float(np.clip((before - after) / (2 * slope), -0.5, 0.5)) if slope > 0 else 0.0


def cut(template: np.ndarray, moving: np.ndarray) -> float:
    """The percentile (0-100) at which to cut both images: the middle of the range that neither shows clipped."""
    dark = max(float(np.mean(image <= LOW * 255)) for image in (template, moving))
    bright = max(float(np.mean(image >= HIGH * 255)) for image in (template, moving))
    return 100 * (dark + (1 - bright)) / 2 if dark < 1 - bright else 50.0


def bitmaps(image: np.ndarray, percentile: float, exclude: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` cut at its ``percentile``: True above; and True where it is more than ``exclude`` levels from the cut."""
    level = np.percentile(image, percentile)
    return image > level, np.abs(image.astype(np.int16) - level) > exclude


def disagreement(bits_t: np.ndarray, kept_t: np.ndarray, bits_m: np.ndarray, kept_m: np.ndarray, dx: int, dy: int) -> float:
    """The fraction of the pixels kept in both where the template's bitmap differs from the moving one's at
    (x + dx, y + dy); 1 where they share none."""
    height, width = bits_t.shape
    if abs(dx) >= width or abs(dy) >= height:
        return 1.0
    at_t = (slice(max(0, -dy), height - max(0, dy)), slice(max(0, -dx), width - max(0, dx)))
    at_m = (slice(max(0, dy), height - max(0, -dy)), slice(max(0, dx), width - max(0, -dx)))
    kept = kept_t[at_t] & kept_m[at_m]
    count = int(np.count_nonzero(kept))
    return float(np.count_nonzero((bits_t[at_t] ^ bits_m[at_m]) & kept)) / count if count else 1.0
