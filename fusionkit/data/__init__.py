"""Data: Afifi et al.'s exposure-errors layout, exposure brackets, pairs and K-exposure stacks,
transforms, rendering brackets from photos, the embedded sample set, image files and atomic writes.
Imports only the core (errors, registry, ``fusionkit.create``).
"""

from .brackets import Bracket, find_brackets
from .detect import detect_layout
from .errors import DatasetLayoutError, DataOptionError, ImageFileError
from .io import read_image, write_image
from .layout import EVS, SPLITS, Scene, SceneIndex, find_scenes
from .loader import ExposurePairs, ExposureStacks, build_loader
from .pairs import PAIR_MODES, fixed_pairs
from .sample import default_sample_dir, ensure_sample, read_manifest
from .transforms import (
    NormStats,
    fuse_chroma,
    from_network_range,
    random_crop,
    random_flip,
    rgb_to_ycbcr,
    std_denormalize,
    std_normalize,
    to_network_range,
    ycbcr_to_rgb,
)

__all__ = [
    "EVS",
    "PAIR_MODES",
    "SPLITS",
    "Bracket",
    "DataOptionError",
    "DatasetLayoutError",
    "ExposurePairs",
    "ExposureStacks",
    "ImageFileError",
    "NormStats",
    "Scene",
    "SceneIndex",
    "build_loader",
    "default_sample_dir",
    "detect_layout",
    "ensure_sample",
    "find_brackets",
    "find_scenes",
    "fixed_pairs",
    "from_network_range",
    "fuse_chroma",
    "random_crop",
    "random_flip",
    "read_image",
    "read_manifest",
    "rgb_to_ycbcr",
    "std_denormalize",
    "std_normalize",
    "to_network_range",
    "write_image",
    "ycbcr_to_rgb",
]
