"""``none``: every exposure taken as already aligned."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from fusionkit.api import Alignment


class NoAlign:
    """No alignment: the identity for every exposure (a tripod, or brackets aligned beforehand)."""

    def __call__(self, exposures: Tensor, reference: int) -> Alignment:
        return Alignment(np.stack([np.eye(3)] * len(exposures)))
