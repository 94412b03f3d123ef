"""Exposure pairs as a torch Dataset, and ``build_loader``: seeded, worker- and torchrun-ready."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate, get_worker_info

from ..errors import FusionkitError
from .errors import DataOptionError, DatasetLayoutError
from .io import read_image
from .layout import SceneIndex, find_scenes
from .pairs import check_pair_mode, fixed_pairs, random_pair
from .transforms import random_crop, random_flip


#: Splits with at most this many scenes keep decoded images in memory (``cache=None``): the sample
#: set (about 90 MB), not the real dataset.
CACHE_SCENES = 200


class ExposurePairs(Dataset):
    """Items {inputs (2, 3, H, W), target (3, H, W), scene, evs} from a scanned split.

    ``pairs="random"``: one item per scene, its pair drawn from (seed, epoch, index);
    ``low``/``high``/``all``: one item per scene and fixed pair. Crop and flip are drawn from the
    same (seed, epoch, index), so results do not depend on the number of workers. Index with an
    int (epoch 0) or an (index, epoch) tuple, as ``EpochSampler`` yields. Each file is decoded
    once per item.
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
    ) -> None:
        self.index = index
        self.cache: dict[Path, torch.Tensor] | None = {} if cache else None
        self.pairs = check_pair_mode(pairs)
        self.crop = _crop_size(crop)
        self.flip = flip
        self.seed = seed
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
        files = [scene.inputs[ev] for ev in pair] + [scene.target]
        images = [read_image(f).numpy() for f in files]
        if any(im.shape != images[-1].shape for im in images):
            sizes = ", ".join(f"{f} ({im.shape[1]}x{im.shape[2]})" for f, im in zip(files, images))
            raise DatasetLayoutError(f"scene {scene.name!r}: images differ in size: {sizes}")
        stack = np.stack(images)  # NumPy, not torch: single-threaded, so no thread contention in workers=0
        if self.crop is not None:
            height, width = stack.shape[-2:]
            if self.crop[0] > height or self.crop[1] > width:
                raise DataOptionError(
                    f"crop {self.crop[0]}x{self.crop[1]} is larger than scene {scene.name!r} ({height}x{width}) "
                    f"in {scene.target.parent}"
                )
            stack = random_crop(stack, self.crop, rng)
        if self.flip:
            stack = random_flip(stack, rng)
        stack = torch.from_numpy(np.ascontiguousarray(stack))
        return {"inputs": stack[:2], "target": stack[2], "scene": scene.name, "evs": ",".join(pair)}


    def _read(self, path: Path) -> torch.Tensor:
        """Decode a file, or take it from the in-memory cache (each worker keeps its own)."""
        if self.cache is None:
            return read_image(path)
        if path not in self.cache:
            self.cache[path] = read_image(path)
        return self.cache[path]


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


class PairLoader(DataLoader):
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
        """Pin the next pass to ``epoch`` (pairs, crops, flips and order follow it)."""
        self.sampler.set_epoch(epoch)


def build_loader(
    root: str | os.PathLike,
    split: str,
    *,
    pairs: str = "random",
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
) -> PairLoader:
    """A DataLoader of exposure pairs from a dataset in Afifi et al.'s layout (see docs/data.md).

    ``shuffle`` defaults to True for the training split only; ``pin_memory`` to True only when
    the batches go to CUDA (``device``, or CUDA being available when no device is given);
    ``distributed`` shards by rank with a seeded DistributedSampler (needs an initialised
    process group, as under torchrun). Items are in [0, 1]; normalise batches with
    ``std_normalize``.
    """
    index = find_scenes(root, split, expert=expert)
    if cache is None:
        cache = len(index) <= CACHE_SCENES
    dataset = ExposurePairs(index, pairs, crop=crop, flip=flip, seed=seed, cache=cache)
    if distributed and not (dist.is_available() and dist.is_initialized()):
        raise DataOptionError("distributed=True needs an initialised torch.distributed process group (run under torchrun)")
    if shuffle is None:
        shuffle = index.split == "training"
    if pin_memory is None:
        pin_memory = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    sampler = EpochSampler(dataset, shuffle=shuffle, seed=seed, distributed=distributed, drop_last=drop_last)
    return PairLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_pairs,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=workers > 0,
    )


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch, with a one-line error when their images differ in size.

    In a worker, default_collate writes straight into shared memory; in the main process NumPy
    stacks (one thread), as torch's multi-threaded copy stalls on a busy CPU.
    """
    sizes = {tuple(item["target"].shape) for item in items}
    if len(sizes) > 1:
        scenes = ", ".join(f"{item['scene']} {item['target'].shape[1]}x{item['target'].shape[2]}" for item in items)
        raise DataOptionError(f"cannot batch images of different sizes ({scenes}); use batch_size=1 or a crop")
    if get_worker_info() is not None:
        return default_collate(items)
    batch = {key: torch.from_numpy(np.stack([item[key].numpy() for item in items])) for key in ("inputs", "target")}
    return {**batch, "scene": [item["scene"] for item in items], "evs": [item["evs"] for item in items]}


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
