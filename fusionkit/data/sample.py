"""The embedded sample set: photographs shipped inside installed packages, rendered at five EVs.

Written in Afifi et al.'s layout so every reader path is exercised; the ground truth is the
photograph itself (a crop of it), the inputs come from ``camera.render_exposure``. Nothing is
downloaded; photos whose package is not installed are skipped. Deterministic: the same
packages give byte-identical files. A manifest makes a second call on a complete folder instant.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, ImageDraw, ImageFont

from .atomic import write_json
from .camera import random_look, render_exposure
from .errors import DataOptionError, DatasetLayoutError
from .io import read_image, write_array
from .layout import EV_VALUES, EVS, INPUT_DIR, SPLITS, target_dir_name

#: Bump when the rendering or the selection changes, so cached sets are regenerated.
SAMPLE_VERSION = 1
MANIFEST = "fusionkit_sample.json"
LOCK = ".fusionkit_sample.lock"
#: (height, width) of every sample scene: modest, for training on a CPU.
DEFAULT_SIZE = (288, 384)
INPUT_QUALITY = 90
TARGET_QUALITY = 95
_SEED = 20210620


@dataclass(frozen=True)
class Photo:
    """A colour photograph inside an installed package, the split all its crops go to, and how many."""

    name: str
    distribution: str  # pip name, for the version recorded in the manifest
    package: str  # import name, located without importing it
    path: str  # inside the package folder
    split: str
    crops: int


#: Splits are by photograph, so no photo (nor the motorcycle's stereo twin) leaks across splits.
PHOTOS = (
    Photo("astronaut", "scikit-image", "skimage", "data/astronaut.png", "training", 6),
    Photo("hubble", "scikit-image", "skimage", "data/hubble_deep_field.jpg", "training", 6),
    Photo("ihc", "scikit-image", "skimage", "data/ihc.png", "training", 6),
    Photo("retina", "scikit-image", "skimage", "data/retina.jpg", "training", 6),
    Photo("motorcycle_left", "scikit-image", "skimage", "data/motorcycle_left.png", "training", 4),
    Photo("motorcycle_right", "scikit-image", "skimage", "data/motorcycle_right.png", "training", 4),
    Photo("china", "scikit-learn", "sklearn", "datasets/images/china.jpg", "training", 4),
    Photo("grace_hopper", "matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "training", 4),
    Photo("chelsea", "scikit-image", "skimage", "data/chelsea.png", "validation", 5),
    Photo("coffee", "scikit-image", "skimage", "data/coffee.png", "testing", 6),
    Photo("rocket", "scikit-image", "skimage", "data/rocket.jpg", "testing", 5),
    Photo("flower", "scikit-learn", "sklearn", "datasets/images/flower.jpg", "testing", 4),
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
    if not any(p.split == "testing" for p in photos) or not any(p.split == "training" for p in photos):
        raise DatasetLayoutError("no sample photographs found in the installed packages (is scikit-image installed?)")
    if max_scenes is not None and max_scenes < 1:
        raise DataOptionError(f"max_scenes must be at least 1, got {max_scenes}")
    key = {
        "version": SAMPLE_VERSION,
        "size": list(size),
        "max_scenes": max_scenes,
        "photos": {p.name: f"{p.distribution} {importlib.metadata.version(p.distribution)}: {p.path}" for p in photos},
    }
    if _complete_manifest(root, key) is not None:  # the usual case: touch nothing
        return root
    _check_not_foreign(root)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / LOCK)):  # torchrun ranks may all call this at once
        if _complete_manifest(root, key) is None:
            _generate(root, key, _plan(photos, max_scenes), size)
    return root


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The sample set's manifest (scenes per split, per-EV PSNR, files), or None when there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:  # unreadable: treated as an interrupted set, to be rewritten
        return {}


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


def _generate(root: Path, key: dict, plan: list[_SceneSpec], size: tuple[int, int]) -> None:
    _check_not_foreign(root)
    previous = read_manifest(root)
    planned = {spec.name: _scene_files(spec.name, spec.photo.split) for spec in plan}
    for relative in (previous or {}).get("files", {}):  # an older or interrupted set: remove what it wrote
        if ".." not in Path(relative).parts:
            (root / relative).unlink(missing_ok=True)
    write_json(root / MANIFEST, {**key, "complete": False, "files": {f: None for fs in planned.values() for f in fs}})

    files, psnr, photos = {}, {ev: [] for ev in EVS}, {}
    for spec in plan:
        if spec.photo.name not in photos:
            photos[spec.photo.name] = _load_photo(spec.photo)
        target = _crop(photos[spec.photo.name], spec, size)
        rng = np.random.default_rng((_SEED, zlib.crc32(spec.name.encode())))
        look = random_look(rng)
        target_file, *input_files = planned[spec.name]
        write_array(root / target_file, target, quality=TARGET_QUALITY)
        stored_target = read_image(root / target_file).numpy()
        for ev, input_file in zip(EVS, input_files):
            rendered = render_exposure(target, EV_VALUES[ev], look, rng)
            write_array(root / input_file, rendered, quality=INPUT_QUALITY)
            psnr[ev].append(_psnr(read_image(root / input_file).numpy(), stored_target))
        files.update({f: (root / f).stat().st_size for f in planned[spec.name]})
    scenes = {split: [s.name for s in plan if s.photo.split == split] for split in SPLITS}
    mean_psnr = {ev: round(float(np.mean(values)), 2) for ev, values in psnr.items()}
    write_json(root / MANIFEST, {**key, "complete": True, "scenes": scenes, "psnr_db": mean_psnr, "files": files})


def _check_not_foreign(root: Path) -> None:
    """Refuse to write into a folder with other content (a real dataset, say) than a sample set."""
    if root.is_dir() and read_manifest(root) is None and any(p.name != LOCK for p in root.iterdir()):
        raise DatasetLayoutError(f"{root} is not empty and holds no fusionkit sample set; choose a new or empty folder")


def _complete_manifest(root: Path, key: dict) -> dict | None:
    """The manifest if it describes a complete set made with ``key`` whose files are all there."""
    manifest = read_manifest(root)
    if manifest is None or not manifest.get("complete") or any(manifest.get(k) != v for k, v in key.items()):
        return None
    for relative, size in manifest["files"].items():
        path = root / relative
        if not path.is_file() or path.stat().st_size != size:
            return None
    return manifest


def _scene_files(scene: str, split: str) -> list[str]:
    """Ground truth first, then the inputs darkest first, as paths relative to the root."""
    target = f"{split}/{target_dir_name(split)}/{scene}.jpg"
    return [target] + [f"{split}/{INPUT_DIR}/{scene}_{ev}.JPG" for ev in EVS]


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


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(1 / max(float(np.mean((x - y) ** 2)), 1e-12)))


def write_contact_sheet(root: str | os.PathLike, path: str | os.PathLike, scene: str | None = None, height: int = 160) -> Path:
    """One scene's five exposures and its ground truth in a labelled row, as an image file.

    ``scene`` defaults to the first test scene of the set; any split's scene can be named.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None or not manifest.get("complete"):
        raise DatasetLayoutError(f"{root} holds no complete sample set; run `fusionkit data sample {root}` first")
    by_name = {name: split for split, names in manifest["scenes"].items() for name in names}
    scene = scene or manifest["scenes"]["testing"][0]
    if scene not in by_name:
        raise DataOptionError(f"no scene {scene!r} in {root}; scenes look like {next(iter(by_name))!r}")
    target, *inputs = _scene_files(scene, by_name[scene])
    labels = [f"EV {EV_VALUES[ev]:+g}" if ev != "0" else "EV 0" for ev in EVS] + ["ground truth"]
    tiles = []
    for relative, label in zip(inputs + [target], labels):
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
