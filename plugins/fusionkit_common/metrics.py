"""Metric components: full-reference PSNR and SSIM, and the no-reference fusion scores MEF papers report.

Each factory returns a :class:`fusionkit.evaluation.metrics.Metric`: called with fused images
(N, 3, H, W), exposures (N, K, 3, H, W) in [0, 1] and, for full-reference metrics, the reference,
it returns (N,) scores on the inputs' device.
"""

from __future__ import annotations

from fusionkit.api import FunctionMetric as Metric
from fusionkit.api import crushed_shadows, mef_ssim_rgb, normalized_mutual_information, psnr, qabf, ssim


def psnr_metric(space: str = "rgb") -> Metric:
    """PSNR to the reference in dB (space 'rgb' or 'y')."""
    return Metric("psnr", psnr, higher_is_better=True, unit="dB", space=space)


def ssim_metric(space: str = "rgb") -> Metric:
    """SSIM to the reference, as scikit-image's Gaussian SSIM (space 'rgb' or 'y')."""
    return Metric("ssim", ssim, higher_is_better=True, space=space)


def mef_ssim_metric() -> Metric:
    """MEF-SSIM (Ma, Zeng & Wang 2015) as the authors' MATLAB mef_ms_ssim on 8-bit grey images."""
    return Metric("mef_ssim", mef_ssim_rgb, higher_is_better=True, needs_reference=False)


def qabf_metric() -> Metric:
    """Petrović & Xydeas' edge preservation Q^AB/F, generalised to K exposures."""
    return Metric("qabf", qabf, higher_is_better=True, needs_reference=False)


def nmi_metric() -> Metric:
    """Hossny's normalised mutual information Q_MI, summed over the exposures (0..K)."""
    return Metric("nmi", normalized_mutual_information, higher_is_better=True, needs_reference=False)


def crushed_shadows_metric() -> Metric:
    """Fraction of pixels turned black (< 2 % luma) that the brightest exposure shows (10-90 %); lower is better."""
    return Metric("crushed_shadows", crushed_shadows, higher_is_better=False, needs_reference=False)
