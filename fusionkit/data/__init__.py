"""Data: reading exposures. Afifi et al.'s exposure-errors layout and brackets (any K, optional reference), which
exposures make a sample (Afifi's pairs or K of a bracket), the loader, transforms, image files and the manifests
of generated sets. Imports only the core (errors, files, registry, ``fusionkit.create``).
"""

from .brackets import Bracket, find_brackets
from .detect import detect_layout
from .errors import DatasetLayoutError, DataOptionError, ImageFileError
from .exposures import PAIR_MODES, fixed_pairs
from .io import read_image, write_image
from .layout import EVS, SPLITS, Scene, SceneIndex, find_scenes
from .loader import ExposurePairs, ExposureStacks, build_loader
from .transforms import NormStats, random_crop, random_flip, std_denormalize, std_normalize

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
    "detect_layout",
    "find_brackets",
    "find_scenes",
    "fixed_pairs",
    "random_crop",
    "random_flip",
    "read_image",
    "std_denormalize",
    "std_normalize",
    "write_image",
]
