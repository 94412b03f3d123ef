"""fusionkit plugin with training-free fusion methods: ``mertens``, ``mef_opt`` (per-image MEF-SSIM ascent), ``mean`` and the ``best_input`` oracle.

Contract of a ``method`` component: its factory takes keyword options only and returns an
``nn.Module`` whose ``forward(exposures, reference=None)`` takes ``exposures`` shaped
(N, K, C, H, W), float in [0, 1], any K >= 1 and C = 3, and returns (N, C, H, W) in [0, 1].
A factory whose ``optimises_per_image`` is True (``mef_opt``) takes seconds a pair, so ``fusionkit bench``
runs it only when named. The module's ``needs_reference`` is True only for oracles, which read the ground truth
``reference`` (N, C, H, W) and raise a FusionkitError without it.
"""

from fusionkit import hookimpl

from .base import ExposureShapeError, FusionMethod, ReferenceRequiredError
from .mef_opt import MEFOpt
from .mertens import Mertens
from .simple import BestInput, Mean

__all__ = ["BestInput", "ExposureShapeError", "FusionMethod", "MEFOpt", "Mean", "Mertens", "ReferenceRequiredError"]


@hookimpl
def register_components(register):
    register("method", "mertens", Mertens)
    register("method", "mef_opt", MEFOpt)
    register("method", "mean", Mean)
    register("method", "best_input", BestInput)
