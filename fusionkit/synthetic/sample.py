"""The embedded sample set: photographs shipped inside installed packages, rendered as exposure brackets.

Written in the sice layout with a reference (``<split>/inputs/<scene>/01..05.jpg`` and
``<split>/reference/<scene>.jpg``) by the same rendering as ``fusionkit data render``
(``render.write_scenes``); the reference is the photograph itself (a crop of it). Nothing is
downloaded; photos whose package is not installed are skipped. Deterministic: the same packages
give byte-identical files. A manifest makes a second call on a complete folder instant.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data import manifest as manifests
from ..data.errors import DataOptionError, DatasetLayoutError
from ..errors import param
from ..data.io import write_array
from .render import DEFAULT_EXPOSURES, SceneJob, scene_files, write_scenes

#: Bump when the rendering, the layout or the selection changes, so cached sets are regenerated.
SAMPLE_VERSION = 2
LOCK = manifests.lock_name(manifests.SAMPLE_MANIFEST)
#: (height, width) of every sample scene: modest, for training on a CPU.
DEFAULT_SIZE = (288, 384)
_SEED = 20210620


@dataclass(frozen=True)
class Photo:
    """A colour photograph inside an installed package, the split all its crops go to, and how many."""

    name: str
    distribution: str  # pip name, for the version recorded in the manifest
    package: str  # import name, located without importing it
    path: str  # inside the package folder
    split: str  # split folder: train, val or test
    crops: int


#: Splits are by photograph, so no photo (nor the motorcycle's stereo twin) leaks across splits.
PHOTOS = (
    Photo("astronaut", "scikit-image", "skimage", "data/astronaut.png", "train", 6),
    Photo("hubble", "scikit-image", "skimage", "data/hubble_deep_field.jpg", "train", 6),
    Photo("ihc", "scikit-image", "skimage", "data/ihc.png", "train", 6),
    Photo("retina", "scikit-image", "skimage", "data/retina.jpg", "train", 6),
    Photo("motorcycle_left", "scikit-image", "skimage", "data/motorcycle_left.png", "train", 4),
    Photo("motorcycle_right", "scikit-image", "skimage", "data/motorcycle_right.png", "train", 4),
    Photo("china", "scikit-learn", "sklearn", "datasets/images/china.jpg", "train", 4),
    Photo("grace_hopper", "matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "train", 4),
    Photo("chelsea", "scikit-image", "skimage", "data/chelsea.png", "val", 5),
    Photo("coffee", "scikit-image", "skimage", "data/coffee.png", "test", 6),
    Photo("rocket", "scikit-image", "skimage", "data/rocket.jpg", "test", 5),
    Photo("flower", "scikit-learn", "sklearn", "datasets/images/flower.jpg", "test", 4),
)


def default_sample_dir() -> Path:
    """``$FUSIONKIT_HOME/sample``, or ``~/.cache/fusionkit/sample``."""
    home = os.environ.get("FUSIONKIT_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "fusionkit") / "sample"


def ensure_sample(
    root: str | os.PathLike | None = None, *, max_scenes: int | None = None, size: tuple[int, int] = DEFAULT_SIZE
) -> Path:
    """Make sure ``root`` (default: ``default_sample_dir()``) holds the complete sample set; return it.

    A complete set with the same parameters is left untouched (a manifest and file sizes are
    checked); an incomplete or outdated one is rewritten. ``max_scenes`` and ``size`` make a
    smaller set (for tests); scenes are then taken round-robin over the photos.
    """
    root = Path(root) if root is not None else default_sample_dir()
    photos = available_photos()
    if not any(p.split == "test" for p in photos) or not any(p.split == "train" for p in photos):
        raise DatasetLayoutError("no sample photographs found in the installed packages (is scikit-image installed?)")
    if max_scenes is not None and max_scenes < 1:
        raise DataOptionError(f"max_scenes must be at least 1, got {max_scenes}")
    key = {
        "version": SAMPLE_VERSION,
        "size": list(size),
        "exposures": DEFAULT_EXPOSURES,
        "max_scenes": max_scenes,
        "photos": {p.name: f"{p.distribution} {importlib.metadata.version(p.distribution)}: {p.path}" for p in photos},
    }
    jobs = _jobs(_plan(photos, max_scenes), size)
    planned = [f for job in jobs for f in scene_files(job.split, job.name, DEFAULT_EXPOSURES)]
    generate = partial(write_scenes, root, jobs, exposures=DEFAULT_EXPOSURES, seed=_SEED)
    manifests.ensure_generated(root, manifests.SAMPLE_MANIFEST, key, planned, generate, what="fusionkit sample set")
    return root


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The sample set's manifest (scenes per split, EVs per scene, PSNR per exposure, files), or None when there is none."""
    return manifests.read_manifest(root, manifests.SAMPLE_MANIFEST)


def available_photos() -> list[Photo]:
    return [p for p in PHOTOS if _photo_path(p) is not None]


@dataclass(frozen=True)
class _SceneSpec:
    photo: Photo
    crop: int

    @property
    def name(self) -> str:
        return f"{self.photo.name}_{self.crop:02d}"


def _plan(photos: list[Photo], max_scenes: int | None) -> list[_SceneSpec]:
    """Every crop of every photo, round-robin (crop 0 of each photo first) and cut at ``max_scenes``."""
    specs = [_SceneSpec(p, k) for p in photos for k in range(p.crops)]
    specs.sort(key=lambda s: (s.crop, photos.index(s.photo)))
    return specs[:max_scenes]


def _jobs(plan: list[_SceneSpec], size: tuple[int, int]) -> list[SceneJob]:
    """A render job per planned scene; each photo is decoded once for all its crops."""
    decoded: dict[str, Image.Image] = {}

    def crop(spec: _SceneSpec) -> np.ndarray:
        if spec.photo.name not in decoded:
            decoded[spec.photo.name] = _load_photo(spec.photo)
        return _crop(decoded[spec.photo.name], spec, size)

    return [SceneJob(spec.name, spec.photo.split, partial(crop, spec)) for spec in plan]


def _photo_path(photo: Photo) -> Path | None:
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / photo.path
    return path if path.is_file() else None


def _load_photo(photo: Photo) -> Image.Image:
    return Image.open(_photo_path(photo)).convert("RGB")


def _crop(photo: Image.Image, spec: _SceneSpec, size: tuple[int, int]) -> np.ndarray:
    """The ``spec.crop``-th of a seeded sequence of distinct windows of the photo, resized to ``size``."""
    height, width = size
    aspect = width / height
    full_w = min(photo.width, photo.height * aspect)
    rng = np.random.default_rng((_SEED, zlib.crc32(spec.photo.name.encode())))
    boxes: list[tuple[float, float, float, float]] = []
    while len(boxes) <= spec.crop:
        for _ in range(200):  # distinct: IoU <= 0.5 with every earlier window (else the last try is kept)
            w = full_w * rng.uniform(0.5, 1.0)
            h = w / aspect
            left, top = rng.uniform(0, photo.width - w), rng.uniform(0, photo.height - h)
            box = (left, top, left + w, top + h)
            if all(_iou(box, other) <= 0.5 for other in boxes):
                break
        boxes.append(box)
    return np.asarray(photo.resize((width, height), Image.Resampling.LANCZOS, box=boxes[spec.crop]))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def write_contact_sheet(root: str | os.PathLike, path: str | os.PathLike, scene: str | None = None, height: int = 160) -> Path:
    """One scene's exposures (with their nominal EVs) and its reference in a labelled row, as an image file.

    ``scene`` defaults to the first test scene of the set (of val, then train, when it has none);
    any split's scene can be named. ``path`` must lie outside the set, whose files it could replace.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None or not manifest.get("complete"):
        raise DatasetLayoutError(f"{root} holds no complete sample set; run `fusionkit data sample {root}` first")
    if root.resolve() in Path(path).resolve().parents:
        raise DataOptionError(f"{param('sheet')} {path} is inside the sample set {root}, which it would change; write it elsewhere")
    by_name = {name: split for split, names in manifest["scenes"].items() for name in names}
    scene = scene or next(name for split in ("test", "val", "train") for name in manifest["scenes"][split])
    if scene not in by_name:
        raise DataOptionError(f"no scene {scene!r} in {root}; scenes look like {next(iter(by_name))!r}")
    reference, *inputs = scene_files(by_name[scene], scene, manifest["exposures"])
    labels = [f"EV {ev:+.1f}" for ev in manifest["evs"][scene]] + ["reference"]
    tiles = []
    for relative, label in zip(inputs + [reference], labels):
        tile = Image.open(root / relative)
        tile = tile.convert("RGB").resize((round(tile.width * height / tile.height), height), Image.Resampling.LANCZOS)
        tiles.append(_labelled(tile, label))
    sheet = Image.new("RGB", (sum(t.width for t in tiles), tiles[0].height), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (sum(t.width for t in tiles[:i]), 0))
    return write_array(path, np.asarray(sheet), quality=85)


def _labelled(tile: Image.Image, label: str) -> Image.Image:
    out = Image.new("RGB", (tile.width, tile.height + 24), "white")
    out.paste(tile, (0, 0))
    ImageDraw.Draw(out).text((6, tile.height + 4), label, fill="black", font=ImageFont.load_default(size=15))
    return out
