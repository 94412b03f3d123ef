"""How a fusion network is composed from registered parts (plugin-facing, part of the core).

Imports only the core modules (interfaces, errors, wholeimage); plugins import from here.
"""

from .fusionnet import FusionNet, count_parameters, pad_to_multiple

__all__ = ["FusionNet", "count_parameters", "pad_to_multiple"]
