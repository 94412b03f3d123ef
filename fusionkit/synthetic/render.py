"""Synthetic exposure brackets from photographs, written in the sice layout with the photograph as reference.

Each scene is rendered by the emulated camera (``camera.render_exposure``, one ``random_look`` per
scene) at K nominal EVs evenly spaced over a gap drawn per scene, as wide as real brackets measure
(``benchmarks/bracket_spread.py``, docs/data.md). ``render_photos`` does this for a folder of photos
(``fusionkit data render``); the sample set writes its scenes with ``write_scenes`` too.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..data.brackets import INPUTS_DIR, REFERENCE_DIR
from ..data.errors import DataOptionError, DatasetLayoutError
from ..errors import param
from ..data.io import IMAGE_EXTENSIONS, is_image_file, read_image, write_array
from ..data.layout import split_name
from ..data.manifest import RENDER_MANIFEST, ensure_generated, read_manifest
from .camera import random_look, render_exposure

#: Nominal darkest-to-brightest gap in EV, drawn uniformly per scene (median 5: -2.75 to +2.25 EV).
#: The camera's S-curve makes gaps measure about 1.4x wider in sRGB-equivalent EV, like real
#: brackets' 6-7 EV; with JPEG at quality 90 this range (rather than 3-6) also matches their
#: darkest-frame mean and crushed share, and brightest-frame clipping (docs/data.md).
GAP_EV = (3.5, 6.5)
#: The darkest exposure sits at -DARK_SHARE x gap, the brightest at +(1 - DARK_SHARE) x gap.
DARK_SHARE = 0.55
DEFAULT_EXPOSURES = 5
INPUT_QUALITY = 90
REFERENCE_QUALITY = 95
#: Split folders written, by canonical split name.
SPLIT_FOLDERS = {"training": "train", "validation": "val", "testing": "test"}
#: Bump when the rendering changes, so a complete set is rewritten rather than reused.
RENDER_VERSION = 1

#: Reports progress: (scenes done, scenes in all, name of the scene just written).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SceneJob:
    """One scene to render: its name, split folder (train, val, test) and how to load its reference."""

    name: str
    split: str
    photo: Callable[[], np.ndarray]  # -> (H, W, 3) uint8 sRGB


def bracket_evs(rng: np.random.Generator, exposures: int = DEFAULT_EXPOSURES) -> list[float]:
    """Nominal EVs of one scene, darkest first: ``exposures`` evenly spaced over a gap drawn from GAP_EV."""
    gap = rng.uniform(*GAP_EV)
    return [float(ev) for ev in np.linspace(-DARK_SHARE * gap, (1 - DARK_SHARE) * gap, exposures)]


def render_bracket(
    photo: np.ndarray, rng: np.random.Generator, exposures: int = DEFAULT_EXPOSURES
) -> tuple[list[np.ndarray], list[float]]:
    """(H, W, 3) uint8 photo -> its exposures darkest first (uint8) and their nominal EVs."""
    look = random_look(rng)
    evs = bracket_evs(rng, exposures)
    return [render_exposure(photo, ev, look, rng) for ev in evs], evs


def scene_files(split: str, scene: str, exposures: int) -> list[str]:
    """A scene's files relative to the set's root: the reference first, then ``01.jpg`` (darkest) onwards."""
    inputs = [f"{split}/{INPUTS_DIR}/{scene}/{i:02d}.jpg" for i in range(1, exposures + 1)]
    return [f"{split}/{REFERENCE_DIR}/{scene}.jpg"] + inputs


def write_scenes(
    root: Path, jobs: Sequence[SceneJob], *, exposures: int, seed: int, progress: Progress | None = None
) -> dict:
    """Render and write every scene; return what a manifest records about them.

    That is: scene names per split folder, each scene's nominal EVs, and the mean PSNR of each
    exposure (by position) against the reference, as stored (after JPEG). A scene's randomness
    is seeded by (``seed``, its name), so it does not depend on the other scenes.
    """
    psnr: list[list[float]] = [[] for _ in range(exposures)]
    evs = {}
    for done, job in enumerate(jobs, 1):
        photo = job.photo()
        reference_file, *input_files = scene_files(job.split, job.name, exposures)
        write_array(root / reference_file, photo, quality=REFERENCE_QUALITY)
        reference = read_image(root / reference_file).numpy()
        images, evs[job.name] = render_bracket(photo, np.random.default_rng((seed, zlib.crc32(job.name.encode()))), exposures)
        for position, (image, input_file) in enumerate(zip(images, input_files)):
            write_array(root / input_file, image, quality=INPUT_QUALITY)
            psnr[position].append(_psnr(read_image(root / input_file).numpy(), reference))
        if progress is not None:
            progress(done, len(jobs), job.name)
    return {
        "scenes": {folder: [job.name for job in jobs if job.split == folder] for folder in SPLIT_FOLDERS.values()},
        "evs": {name: [round(ev, 3) for ev in values] for name, values in evs.items()},
        "psnr_db": {f"{i + 1:02d}": round(float(np.mean(values)), 2) for i, values in enumerate(psnr)},
    }


def render_photos(
    photos: str | os.PathLike,
    out: str | os.PathLike,
    *,
    exposures: int = DEFAULT_EXPOSURES,
    size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split: str | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict:
    """Render every image under ``photos`` (recursively) as a scene of ``out``; return the set's manifest.

    Scenes are named by their path below ``photos`` (``kodak24/kodim01.jpg`` -> ``kodak24_kodim01``).
    ``split`` puts every scene in one split; otherwise a hash of the name sends a scene to test
    (``test_fraction``), val (``val_fraction``) or train, so adding photos never moves others.
    ``size`` downscales photos whose longer side exceeds it. A complete set made with the same
    photos and options is left as it is, and an interrupted one rewritten; a complete set made
    otherwise is refused unless ``overwrite`` (which deletes only the files its manifest lists), and
    a non-empty folder that holds no set is refused.
    """
    photos, out = Path(photos), Path(out)
    if not photos.is_dir():
        raise DatasetLayoutError(f"photos folder not found: {photos}")
    if out.resolve() == photos.resolve() or photos.resolve() in out.resolve().parents:
        raise DataOptionError(f"the output folder {out} is inside the photos folder {photos}; choose another")
    if exposures < 2:
        raise DataOptionError(f"exposures must be at least 2, got {exposures}")
    if size is not None and size < 1:
        raise DataOptionError(f"size must be a positive number of pixels, got {size}")
    if split is None and not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise DataOptionError(f"val and test fractions must be >= 0 with a sum below 1, got {val_fraction} and {test_fraction}")
    files = _photo_files(photos)
    jobs = [
        SceneJob(name, SPLIT_FOLDERS[split_name(split)] if split else _hashed_split(name, val_fraction, test_fraction),
                 partial(_load_photo, path, size))
        for name, path in files.items()
    ]
    key = {
        "version": RENDER_VERSION,
        "photos": {name: f"{path.relative_to(photos)} ({path.stat().st_size} bytes)" for name, path in files.items()},
        "exposures": exposures,
        "size": size,
        "seed": seed,
        "split": split,
        "fractions": None if split else {"val": val_fraction, "test": test_fraction},
    }
    if not overwrite:
        _check_no_other_set(out, key)
    planned = [f for job in jobs for f in scene_files(job.split, job.name, exposures)]
    generate = partial(write_scenes, out, jobs, exposures=exposures, seed=seed, progress=progress)
    return ensure_generated(out, RENDER_MANIFEST, key, planned, generate, what="set written by `fusionkit data render`")


def _check_no_other_set(out: Path, key: dict) -> None:
    """Refuse to replace a complete set made from other photos or with other options: it may be the only one a user has."""
    earlier = read_manifest(out, RENDER_MANIFEST)
    if earlier and earlier.get("complete") and any(earlier.get(k) != v for k, v in key.items()):
        raise DatasetLayoutError(
            f"{out} holds a set rendered from other photos or with other options; "
            f"pass {param('overwrite')} to replace it, or choose another folder"
        )


def _photo_files(photos: Path) -> dict[str, Path]:
    """Scene name -> image file, for every image below ``photos`` (hidden files and folders skipped)."""
    found: dict[str, Path] = {}
    for path in sorted(photos.rglob("*")):
        relative = path.relative_to(photos)
        if any(part.startswith(".") for part in relative.parts) or not (is_image_file(path) and path.is_file()):
            continue
        name = "_".join(relative.with_suffix("").parts)
        if name in found:
            raise DatasetLayoutError(f"two photos make scene {name!r}: {found[name]} and {path}; rename one")
        found[name] = path
    if not found:
        raise DatasetLayoutError(f"no images ({' '.join(IMAGE_EXTENSIONS)}) in {photos} or its subfolders")
    return found


def _hashed_split(name: str, val_fraction: float, test_fraction: float) -> str:
    """A split folder chosen by a hash of the scene name: stable, whatever other photos there are."""
    u = zlib.crc32(name.encode()) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def _load_photo(path: Path, size: int | None) -> np.ndarray:
    """A photo as (H, W, 3) uint8 sRGB, its longer side downscaled to ``size`` (Lanczos) when larger."""
    pixels = np.rint(read_image(path).numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    if size is None or max(pixels.shape[:2]) <= size:
        return pixels
    scale = size / max(pixels.shape[:2])
    width, height = max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(1 / max(float(np.mean((x - y) ** 2)), 1e-12)))
