"""fusionkit plugin that aligns a handheld bracket before fusion: ``none``, ``mtb`` and ``homography``.

Contract of an ``align`` component (``fusionkit.api.Align``): its factory takes keyword options only and
returns a callable taking exposures (K, 3, H, W) in [0, 1] and the reference's index, and giving an
``Alignment``: per exposure the homography from the reference's pixel coordinates to its own, the identity
for exposures found already aligned, and ``reliable`` False with a ``note`` when the estimate is not to be used.
"""

from fusionkit import hookimpl

from .homography import FeatureAlign
from .identity import NoAlign
from .mtb import MTBAlign

__all__ = ["FeatureAlign", "MTBAlign", "NoAlign"]


@hookimpl
def register_components(register):
    register("align", "none", NoAlign)
    register("align", "mtb", MTBAlign)
    register("align", "homography", FeatureAlign)
