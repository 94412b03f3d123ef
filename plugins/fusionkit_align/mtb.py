"""``mtb``: median threshold bitmaps, whole-pixel translations only, chained through neighbours."""

from __future__ import annotations

import cv2
import numpy as np
from torch import Tensor

from fusionkit.api import Alignment, ComponentOptionError

from .chain import PairFailed, chain
from .images import grey


class MTBAlign:
    """Median threshold bitmaps (Ward 2003): whole-pixel translations, robust to exposure, blind to rotation."""

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
        when it reaches the search limit (2 ** max_bits pixels), where the bitmaps found no agreement."""
        mtb = cv2.createAlignMTB(self.max_bits, self.exclude_range, True)
        dx, dy = mtb.calculateShift(template, moving)  # how to shift ``moving`` onto ``template``
        limit = 2 ** self.max_bits - 1
        if max(abs(dx), abs(dy)) >= limit:
            raise PairFailed(f"the bitmaps' best shift ({-dx}, {-dy}) px is at the search limit of {limit} px")
        return np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]])
