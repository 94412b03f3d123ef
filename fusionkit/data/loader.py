"""Afifi et al.'s exposure pairs and K-exposure stacks from brackets as torch Datasets, and ``build_loader``:
seeded, worker- and torchrun-ready."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate, get_worker_info

from ..errors import FusionkitError, FusionkitWarning
from .brackets import Bracket
from .detect import scan_split
from .errors import DataOptionError, DatasetLayoutError
from .io import read_image
from .layout import SceneIndex, split_name
from .exposures import check_pair_mode, fixed_pairs, random_exposures, random_pair, spread_exposures
from .transforms import fit_within, random_crop, random_flip


#: Bracket splits with at most this many scenes keep decoded images in memory (``cache=None``): the
#: sample set (about 100 MB per process), not a large dataset.
CACHE_SCENES = 200


class _SceneItems(Dataset):
    """What both datasets share: decoding (cached, downscaled), the size check, crop and flip."""

    def __init__(
        self,
        crop: int | tuple[int, int] | None,
        flip: bool,
        seed: int,
        cache: bool,
        max_side: int | None,
    ) -> None:
        self.crop = _crop_size(crop)
        self.flip = flip
        self.seed = seed
        self.cache: dict[Path, np.ndarray] | None = {} if cache else None
        if max_side is not None and max_side < 1:
            raise DataOptionError(f"max_side must be a positive number of pixels, got {max_side!r}")
        self.max_side = max_side

    def _stack(self, scene: str, files: Sequence[Path], rng: np.random.Generator, where: Path) -> torch.Tensor:
        """The files decoded into one (len(files), 3, H, W) tensor, cropped and flipped by ``rng``."""
        images = [self._read(f) for f in files]
        if any(im.shape != images[-1].shape for im in images):
            sizes = ", ".join(f"{f} ({im.shape[1]}x{im.shape[2]})" for f, im in zip(files, images))
            raise DatasetLayoutError(f"scene {scene!r}: images differ in size: {sizes}")
        stack = np.stack(images)  # NumPy, not torch: single-threaded, so no thread contention in workers=0
        if self.crop is not None:
            height, width = stack.shape[-2:]
            if self.crop[0] > height or self.crop[1] > width:
                raise DataOptionError(
                    f"crop {self.crop[0]}x{self.crop[1]} is larger than scene {scene!r} ({height}x{width}) in {where}"
                )
            stack = random_crop(stack, self.crop, rng)
        if self.flip:
            stack = random_flip(stack, rng)
        return torch.from_numpy(np.ascontiguousarray(stack))

    def _read(self, path: Path) -> np.ndarray:
        """Decode a file (downscaled to ``max_side``), or take it from the in-memory cache (each worker its own)."""
        if self.cache is not None and path in self.cache:
            return _expand(self.cache[path])
        image = read_image(path)
        if self.max_side is not None:
            image = fit_within(image, self.max_side)
        image = image.numpy()
        if self.cache is not None:
            self.cache[path] = _compact(image)
        return image


class ExposurePairs(_SceneItems):
    """Items {inputs (2, 3, H, W), target (3, H, W), scene, evs} from a split in Afifi et al.'s layout.

    ``pairs="random"``: one item per scene, its pair drawn from (seed, epoch, index);
    ``low``/``high``/``all``: one item per scene and fixed pair. Crop and flip are drawn from the
    same (seed, epoch, index), so results do not depend on the number of workers. Index with an
    int (epoch 0) or an (index, epoch) tuple, as ``EpochSampler`` yields. Each file is decoded
    once per item, or once in all with ``cache``.
    """

    def __init__(
        self,
        index: SceneIndex,
        pairs: str = "random",
        *,
        crop: int | tuple[int, int] | None = None,
        flip: bool = False,
        seed: int = 0,
        cache: bool = False,
        max_side: int | None = None,
    ) -> None:
        super().__init__(crop, flip, seed, cache, max_side)
        self.index = index
        self.pairs = check_pair_mode(pairs)
        if pairs == "random":
            self.items: list[tuple[int, tuple[str, str] | None]] = [(i, None) for i in range(len(index))]
        else:
            self.items = [(i, pair) for i in range(len(index)) for pair in fixed_pairs(pairs)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        item, epoch = key if isinstance(key, tuple) else (key, 0)
        scene_number, pair = self.items[item]
        scene = self.index[scene_number]
        rng = np.random.default_rng((self.seed, epoch, item))
        if pair is None:
            pair = random_pair(rng)
        stack = self._stack(scene.name, [scene.inputs[ev] for ev in pair] + [scene.target], rng, scene.target.parent)
        return {"inputs": stack[:2], "target": stack[2], "scene": scene.name, "evs": ",".join(pair)}


class ExposureStacks(_SceneItems):
    """Items {inputs (K, 3, H, W) darkest first, target (3, H, W) or None, scene, evs} from brackets.

    One item per scene. ``mode="random"`` (training): K of the scene's exposures drawn without
    replacement from (seed, epoch, index); any other mode (evaluation): K evenly spread from the
    darkest to the brightest, both included (K = 2: the extremes). ``exposures`` is K or ``"all"``;
    scenes with fewer than K exposures are skipped with a warning. ``evs`` names the exposures
    used by file name (``"01,05"``). Crop, flip and indexing as in ``ExposurePairs``.
    """

    def __init__(
        self,
        brackets: Sequence[Bracket],
        mode: str = "random",
        *,
        exposures: int | str = 2,
        crop: int | tuple[int, int] | None = None,
        flip: bool = False,
        seed: int = 0,
        cache: bool = False,
        max_side: int | None = None,
    ) -> None:
        super().__init__(crop, flip, seed, cache, max_side)
        self.random = check_pair_mode(mode) == "random"
        self.k = _exposure_count(exposures)
        self.brackets = [b for b in brackets if self.k is None or len(b.exposures) >= self.k]
        if len(self.brackets) < len(brackets):
            short = next(b for b in brackets if len(b.exposures) < self.k)
            message = (
                f"skipped {len(brackets) - len(self.brackets)} of {len(brackets)} scenes with fewer than "
                f"{self.k} exposures (e.g. {short.name!r}: {len(short.exposures)})"
            )
            if not self.brackets:
                raise DataOptionError(f"{message}: none left; ask for fewer exposures")
            warnings.warn(message, FusionkitWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self.brackets)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        item, epoch = key if isinstance(key, tuple) else (key, 0)
        bracket = self.brackets[item]
        rng = np.random.default_rng((self.seed, epoch, item))
        count = len(bracket.exposures)
        if self.k is None:
            chosen = list(range(count))
        elif self.random:
            chosen = random_exposures(count, self.k, rng)
        else:
            chosen = spread_exposures(count, self.k)
        files = [bracket.exposures[i] for i in chosen] + ([bracket.reference] if bracket.reference is not None else [])
        stack = self._stack(bracket.name, files, rng, bracket.exposures[0].parent)
        k = len(chosen)
        labels = bracket.labels
        return {
            "inputs": stack[:k],
            "target": stack[k] if bracket.reference is not None else None,
            "scene": bracket.name,
            "evs": ",".join(labels[i] for i in chosen),
        }


class EpochSampler(Sampler):
    """Yields (index, epoch) so every item's random choices follow (seed, epoch, index).

    Each pass uses the current epoch and then advances it; ``set_epoch(e)`` pins the next pass
    to epoch ``e`` (call it every epoch, as with DistributedSampler). Under ``distributed`` the
    indices come from a seeded DistributedSampler (this rank's share).
    """

    def __init__(
        self, dataset: Dataset, *, shuffle: bool, seed: int = 0, distributed: bool = False, drop_last: bool = False
    ) -> None:
        self.size = len(dataset)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.ranks = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last) if distributed else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ranks) if self.ranks is not None else self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        if self.ranks is not None:
            self.ranks.set_epoch(epoch)
            order = list(self.ranks)
        elif self.shuffle:
            order = np.random.default_rng((self.seed, epoch)).permutation(self.size).tolist()
        else:
            order = range(self.size)
        return ((i, epoch) for i in order)


class ExposureLoader(DataLoader):
    """A DataLoader whose errors stop its workers at once and, for fusionkit errors, stay one line."""

    def __iter__(self):
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:
                self._stop_workers(batches)
                if isinstance(exc, FusionkitError) and "\n" in str(exc):  # re-raised from a worker
                    raise type(exc)(_worker_message(exc)) from None
                raise
            yield batch

    def _stop_workers(self, batches) -> None:
        """Left to garbage collection, torch waits 5 s per worker (sometimes inside a later fork)."""
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
            self._iterator = None  # with persistent workers, the next pass starts new ones

    def set_epoch(self, epoch: int) -> None:
        """Pin the next pass to ``epoch`` (the exposures drawn, crops, flips and order follow it)."""
        self.sampler.set_epoch(epoch)


def build_loader(
    root: str | os.PathLike,
    split: str,
    *,
    pairs: str = "random",
    exposures: int | str = 2,
    crop: int | tuple[int, int] | None = None,
    flip: bool = False,
    batch_size: int = 1,
    workers: int = 0,
    seed: int = 0,
    shuffle: bool | None = None,
    distributed: bool = False,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    device: str | torch.device | None = None,
    expert: str = "c",
    cache: bool | None = None,
    max_side: int | None = None,
    dataset: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
) -> ExposureLoader:
    """A DataLoader of exposures (and their reference) from a dataset folder (see docs/data.md).

    The layout is detected (``detect_layout``: Afifi et al.'s exposure-errors layout, else
    brackets), or ``dataset`` names a dataset component (built through the registry with
    ``dataset_options``). Afifi's layout gives pairs (``exposures`` must be 2); brackets give K =
    ``exposures`` (or ``"all"``) per item, and ``target`` None when the set has no reference.
    ``pairs`` is the mode of either (``PAIR_MODES``): ``random`` draws the exposures, the others fix them.
    ``shuffle`` defaults to True for the training split only; ``pin_memory`` to True only when
    the batches go to CUDA (``device``, or CUDA being available when no device is given);
    ``distributed`` shards by rank with a seeded DistributedSampler (needs an initialised
    process group, as under torchrun); ``cache`` defaults to on for bracket splits of at most
    ``CACHE_SCENES`` scenes; ``max_side`` downscales images on load. Items are in [0, 1];
    normalise batches with ``std_normalize``.
    """
    scenes = scan_split(root, split, dataset=dataset, expert=expert, options=dataset_options)
    options = {"crop": crop, "flip": flip, "seed": seed, "max_side": max_side}
    if isinstance(scenes, SceneIndex):
        if exposures != 2:
            raise DataOptionError(
                f"exposures={exposures!r}: Afifi et al.'s layout is read as pairs (exposures=2, pairs=random|low|high|all)"
            )
        items: Dataset = ExposurePairs(scenes, pairs, cache=bool(cache), **options)
    else:
        cache = len(scenes) <= CACHE_SCENES if cache is None else cache
        items = ExposureStacks(scenes, pairs, exposures=exposures, cache=cache, **options)
    if distributed and not (dist.is_available() and dist.is_initialized()):
        raise DataOptionError("distributed=True needs an initialised torch.distributed process group (run under torchrun)")
    if shuffle is None:
        shuffle = split_name(split) == "training"
    if pin_memory is None:
        pin_memory = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    sampler = EpochSampler(items, shuffle=shuffle, seed=seed, distributed=distributed, drop_last=drop_last)
    return ExposureLoader(
        items,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_stacks,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=workers > 0,
    )


def collate_stacks(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch (``target`` None when no item has one), with one-line errors for uneven items.

    In a worker, default_collate writes straight into shared memory; in the main process NumPy
    stacks (one thread), as torch's multi-threaded copy stalls on a busy CPU.
    """
    counts = {len(item["inputs"]) for item in items}
    if len(counts) > 1:
        found = ", ".join(f"{item['scene']} {len(item['inputs'])}" for item in items)
        raise DataOptionError(f"cannot batch scenes with different numbers of exposures ({found}); use batch_size=1 or exposures=K")
    if len({item["target"] is None for item in items}) > 1:
        raise DataOptionError(f"cannot batch scenes with and without a reference ({', '.join(i['scene'] for i in items)})")
    if len({(item["inputs"].shape, _shape(item["target"])) for item in items}) > 1:
        scenes = ", ".join(f"{item['scene']} {_size(item)}" for item in items)
        raise DataOptionError(f"cannot batch images of different sizes ({scenes}); use batch_size=1 or a crop")
    keys = ("inputs",) if items[0]["target"] is None else ("inputs", "target")
    if get_worker_info() is not None:
        batch = default_collate([{key: item[key] for key in (*keys, "scene", "evs")} for item in items])
    else:
        batch = {key: torch.from_numpy(np.stack([item[key].numpy() for item in items])) for key in keys}
        batch.update(scene=[item["scene"] for item in items], evs=[item["evs"] for item in items])
    return {"target": None, **batch}


def _shape(image: torch.Tensor | None) -> tuple[int, ...] | None:
    return None if image is None else tuple(image.shape)


def _size(item: dict[str, Any]) -> str:
    """HxW of an item, from its target when it has one."""
    image = item["target"] if item["target"] is not None else item["inputs"]
    return f"{image.shape[-2]}x{image.shape[-1]}"


def _exposure_count(exposures: int | str) -> int | None:
    """K as an int >= 2, or None for ``"all"``."""
    if exposures == "all":
        return None
    if isinstance(exposures, bool) or not isinstance(exposures, int) or exposures < 2:
        raise DataOptionError(f"exposures must be an integer of at least 2 or 'all', got {exposures!r}")
    return exposures


def _compact(image: np.ndarray) -> np.ndarray:
    """An 8-bit image's values as uint8 (4x less memory), exactly; anything else as it is."""
    levels = np.rint(image * 255).astype(np.uint8)
    return levels if np.array_equal(_expand(levels), image) else image


def _expand(image: np.ndarray) -> np.ndarray:
    """Inverse of ``_compact``: the same float32 values ``read_image`` gives for an 8-bit file."""
    return image.astype(np.float32) / 255 if image.dtype == np.uint8 else image


def _crop_size(crop: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if crop is None:
        return None
    size = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if len(size) != 2 or min(size) < 1:
        raise DataOptionError(f"crop must be a positive size or (height, width), got {crop!r}")
    return int(size[0]), int(size[1])


def _seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's global generators from torch's per-worker seed (for user transforms)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _worker_message(exc: FusionkitError) -> str:
    """torch re-raises a worker's error with its traceback in the message; keep the original line."""
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    lines = str(exc).splitlines()
    original = [line[len(prefix) :] for line in lines if line.startswith(prefix)]
    return original[-1] if original else lines[0]
