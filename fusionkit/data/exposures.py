"""Which exposures of a scene make a sample: random for training, fixed sets for testing.

Afifi et al.'s five named EVs give pairs (the paper's low / high / all); a bracket of n exposures
gives K of them by position, darkest first.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .errors import DataOptionError
from .layout import EVS

#: The values of the loader's ``pairs`` option. ``random`` (training): per scene and epoch, a random pair of
#: Afifi's EVs, or K random exposures of a bracket. ``low`` / ``high`` / ``all`` (testing): the paper's pairs,
#: every pair of each scene once; a bracket gives its K exposures spread from darkest to brightest under each.
PAIR_MODES = ("random", "low", "high", "all")

_FIXED_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "low": (("N1.5", "N1"),),
    "high": tuple(combinations(("0", "P1", "P1.5"), 2)),
    "all": tuple(combinations(EVS, 2)),
}


def fixed_pairs(mode: str) -> tuple[tuple[str, str], ...]:
    """The pairs every scene contributes under ``low`` (1), ``high`` (3) or ``all`` (10), darker first."""
    check_pair_mode(mode)
    if mode == "random":
        raise ValueError("random pairs are drawn per sample; use random_pair")
    return _FIXED_PAIRS[mode]


def random_pair(rng: np.random.Generator) -> tuple[str, str]:
    """Two different exposures drawn uniformly, returned darker first."""
    i, j = sorted(rng.choice(len(EVS), size=2, replace=False))
    return EVS[i], EVS[j]


def check_pair_mode(mode: str) -> str:
    if mode not in PAIR_MODES:
        raise DataOptionError(f"unknown pairs {mode!r}; use one of {', '.join(PAIR_MODES)}")
    return mode


def random_exposures(count: int, k: int, rng: np.random.Generator) -> list[int]:
    """K different positions among ``count`` exposures, drawn uniformly, in darkest-first order."""
    return sorted(int(i) for i in rng.choice(count, size=k, replace=False))


def spread_exposures(count: int, k: int) -> list[int]:
    """K >= 2 positions evenly spread from the darkest (0) to the brightest (count - 1), both included."""
    return [int(i) for i in np.rint(np.linspace(0, count - 1, k))]
