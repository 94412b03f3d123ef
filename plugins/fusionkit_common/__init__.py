"""fusionkit plugin with the components every fusion study shares, whatever its model: metrics
(``psnr``, ``ssim``, ``mef_ssim``, ``qabf``, ``nmi``, ``crushed_shadows``), losses (``l1``, ``perceptual``, ``mef_ssim``, ``tones``)
and dataset readers (``exposure_errors``, ``brackets``)."""

from fusionkit import hookimpl

from .datasets import BracketsDataset, ExposureErrorsDataset
from .losses import EdgeLoss, L1Reconstruction, MEFSSIMLoss, Perceptual, ToneLoss
from .metrics import crushed_shadows_metric, mef_ssim_metric, nmi_metric, psnr_metric, qabf_metric, ssim_metric


@hookimpl
def register_components(register):
    register("metric", "psnr", psnr_metric)
    register("metric", "ssim", ssim_metric)
    register("metric", "mef_ssim", mef_ssim_metric)
    register("metric", "qabf", qabf_metric)
    register("metric", "nmi", nmi_metric)
    register("metric", "crushed_shadows", crushed_shadows_metric)
    register("loss", "l1", L1Reconstruction)
    register("loss", "perceptual", Perceptual)
    register("loss", "mef_ssim", MEFSSIMLoss)
    register("loss", "tones", ToneLoss)
    register("loss", "qabf", EdgeLoss)
    register("dataset", "exposure_errors", ExposureErrorsDataset)
    register("dataset", "brackets", BracketsDataset)
