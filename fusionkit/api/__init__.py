"""The public surface for plugins: a plugin imports ``fusionkit`` and ``fusionkit.api``, nothing else of fusionkit.

It holds the registry's functions, the errors, each kind's contract (a Protocol checked when a
component is built) and the building blocks the reference plugins share. Imports every layer but
the cli; nothing in fusionkit imports it. tests/test_architecture.py enforces both rules, for
``plugins/`` and ``docs/examples/`` too; docs/plugins.md documents every name below.
"""

from .. import KINDS, Component, available, component, create, hookimpl
from ..colour import GRAY, gray
from ..contracts import (
    Align,
    Alignment,
    Attention,
    Backbone,
    BackboneOutput,
    Dataset,
    DistillLoss,
    FusionHead,
    Loss,
    Method,
    Metric,
    Pretrained,
    Recipe,
    Student,
    Teacher,
    head_produces_weights,
)
from ..data import Bracket, DatasetLayoutError, SceneIndex, find_brackets, find_scenes
from ..data.transforms import fit_within
from ..errors import (
    ComponentConflictError,
    ComponentOptionError,
    ContractError,
    FusionkitError,
    FusionkitWarning,
    UnknownComponentError,
    param,
)
from ..evaluation.fusion_metrics import QABF_CONSTANTS, brightest_luma, crushed_shadows, normalized_mutual_information, qabf
from ..evaluation.mef_ssim import SCALE_WEIGHTS as MEF_SSIM_SCALE_WEIGHTS
from ..evaluation.mef_ssim import WINDOW as MEF_SSIM_WINDOW
from ..evaluation.mef_ssim import mef_ssim, mef_ssim_rgb
from ..evaluation.metrics import Metric as FunctionMetric
from ..evaluation.metrics import psnr, ssim
from ..inference.pipeline import fused_image, network_target, student_input
from ..models import FusionNet, WeightBlend
from ..models.blend import mertens_weights
from ..models.laplacian_blend import LevelCorrection, blend_rows, corrected_blend, level_sizes, pyramid_blend, pyramid_levels
from ..models.shadow_fill import ShadowFill, luma_floor
from ..plugins import build_registry, get_registry, set_registry
from ..runs.checkpoint import unwrap
from ..training.context import RunContext
from ..training.perceptual import build_perceptual_loss
from ..training.stage import Stage
from ..training.terms import LossTerms
from ..training.trial import blamed, named, trial_batch
from ..wholeimage import WholeImagePool, upsample_like

__all__ = [
    # registering and building components
    "KINDS", "Component", "available", "component", "create", "hookimpl",
    # testing a plugin without installing it
    "build_registry", "get_registry", "set_registry",
    # errors
    "ComponentConflictError", "ComponentOptionError", "ContractError", "DatasetLayoutError", "FusionkitError",
    "FusionkitWarning", "UnknownComponentError", "param",
    # contracts, one per kind
    "Align", "Alignment", "Attention", "Backbone", "BackboneOutput", "Dataset", "DistillLoss", "FusionHead", "head_produces_weights", "Loss",
    "Method", "Metric", "Pretrained", "Recipe", "Student", "Teacher",
    # building blocks: networks and blends
    "FusionNet", "WeightBlend", "GRAY", "gray", "mertens_weights", "pyramid_blend", "blend_rows", "LevelCorrection",
    "corrected_blend", "level_sizes", "pyramid_levels", "ShadowFill", "luma_floor",
    "WholeImagePool", "upsample_like", "fit_within",
    # building blocks: scores and losses
    "FunctionMetric", "psnr", "ssim", "mef_ssim", "mef_ssim_rgb", "MEF_SSIM_WINDOW", "MEF_SSIM_SCALE_WEIGHTS", "qabf", "QABF_CONSTANTS",
    "normalized_mutual_information", "crushed_shadows", "brightest_luma", "build_perceptual_loss",
    # building blocks: datasets
    "Bracket", "SceneIndex", "find_brackets", "find_scenes",
    # building blocks: training recipes
    "Stage", "RunContext", "LossTerms", "trial_batch", "blamed", "named", "student_input", "network_target", "fused_image",
    "unwrap",
]
