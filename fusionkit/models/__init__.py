"""How a fusion network is composed from registered parts, and how weight maps blend exposures
(plugin-facing, part of the core).

Imports only the core modules (colour, contracts, errors, wholeimage); plugins reach it through ``fusionkit.api``.
"""

from .blend import WeightBlend
from .fusionnet import FusionNet, count_parameters, pad_to_multiple

__all__ = ["FusionNet", "WeightBlend", "count_parameters", "pad_to_multiple"]
