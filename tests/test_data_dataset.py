"""Afifi et al.'s layout: scanning, skipped scenes, pair sets, the loader, and bad-input messages."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import fusionkit.data.loader as loader_module
from fusionkit.data import (
    EVS,
    DataOptionError,
    DatasetLayoutError,
    ExposurePairs,
    ImageFileError,
    Scene,
    SceneIndex,
    build_loader,
    find_scenes,
    fixed_pairs,
)
from fusionkit.errors import FusionkitWarning
from tests.fake_exposure_data import epoch_signatures

H, W = 24, 32
pytestmark = pytest.mark.filterwarnings("ignore::fusionkit.errors.FusionkitWarning")  # the fake set skips scenes


def _pattern(blue: int, height: int = H, width: int = W) -> np.ndarray:
    """R encodes x, G encodes y (so crops and flips can be read back), B tells the files apart."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 7 % 256, y * 10 % 256, np.full_like(x, blue)], axis=-1).astype(np.uint8)


def _write_scene(split_dir: Path, scene: str, *, evs=EVS, target_dir="GT_IMAGES", ext=".png", target=True, size=(H, W)):
    (split_dir / "INPUT_IMAGES").mkdir(parents=True, exist_ok=True)
    for i, ev in enumerate(evs):
        iio.imwrite(split_dir / "INPUT_IMAGES" / f"{scene}_{ev}{ext}", _pattern(40 * i), extension=ext.lower())
    if target:
        (split_dir / target_dir).mkdir(parents=True, exist_ok=True)
        iio.imwrite(split_dir / target_dir / f"{scene}.png", _pattern(250, *size))


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """Every split in the real layout, with the odd files a real download can hold."""
    root = tmp_path_factory.mktemp("exposure_dataset")
    train = root / "training"
    _write_scene(train, "a0001-MB_20030906_030")
    _write_scene(train, "a0002-IMG_2045", ext=".PNG")
    _write_scene(train, "a0003-dgw_146", ext=".JPG")
    _write_scene(train, "a0004-lacks_P1", evs=("N1.5", "N1", "0", "P1.5"))
    _write_scene(train, "a0005-no_gt", target=False)
    (train / "INPUT_IMAGES" / "notes.txt").write_text("not an image")
    (train / "INPUT_IMAGES" / "a0001-MB_20030906_030_P2.JPG").write_bytes(b"an EV the dataset does not have")
    val = root / "validation"
    _write_scene(val, "v0-corrupt")
    (val / "INPUT_IMAGES" / "v0-corrupt_N1.JPG").write_bytes(b"\xff\xd8\xff\xe0 truncated JPEG")
    (val / "INPUT_IMAGES" / "v0-corrupt_N1.png").unlink()
    _write_scene(val, "v1-good")
    _write_scene(val, "v2-big_gt", size=(H + 2, W))
    test = root / "testing"
    for expert in "ac":
        _write_scene(test, "t0", target_dir=f"expert_{expert}_testing_set")
        _write_scene(test, "t1", target_dir=f"expert_{expert}_testing_set")
    return root


def _scan(root, split, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FusionkitWarning)
        return find_scenes(root, split, **options)


def _fake_index(scenes: int, split: str = "testing") -> SceneIndex:
    """A scanned split without files: enough to count pairs."""
    fake = [Scene(f"s{i}", {ev: Path(f"s{i}_{ev}.JPG") for ev in EVS}, Path(f"s{i}.jpg")) for i in range(scenes)]
    return SceneIndex(Path("/nowhere"), split, fake)


# ----- scanning ------------------------------------------------------------------------------
def test_reader_finds_complete_scenes_and_counts_what_it_skipped(fake_root):
    with pytest.warns(FusionkitWarning) as caught:
        index = find_scenes(fake_root, "training")
    assert [s.name for s in index] == ["a0001-MB_20030906_030", "a0002-IMG_2045", "a0003-dgw_146"]
    assert index.skipped == {"missing_exposure": 1, "missing_target": 1}
    assert index.ignored_files == 2  # notes.txt and the _P2 file
    message = str(caught[0].message)
    assert "\n" not in message
    assert "skipped 2 of 5 scenes" in message and "'a0004-lacks_P1' lacks P1" in message and "a0005-no_gt" in message
    scene = index[1]
    assert list(scene.inputs) == list(EVS) and scene.inputs["P1.5"].name == "a0002-IMG_2045_P1.5.PNG"
    assert scene.target.name == "a0002-IMG_2045.png"


def test_split_aliases_and_expert_folders(fake_root):
    assert _scan(fake_root, "train").split == "training"
    assert len(_scan(fake_root, "val")) == 3
    assert _scan(fake_root, "test")[0].target.parent.name == "expert_c_testing_set"
    assert _scan(fake_root, "testing", expert="A")[0].target.parent.name == "expert_a_testing_set"


@pytest.mark.parametrize(
    "split, options, expected",
    [
        ("testing", {"expert": "b"}, "expert_b_testing_set"),
        ("testing", {"expert": "z"}, "unknown expert 'z'"),
        ("trainnig", {}, "unknown split 'trainnig'"),
    ],
)
def test_bad_split_or_expert_is_one_line(fake_root, split, options, expected):
    with pytest.raises((DatasetLayoutError, DataOptionError)) as exc:
        find_scenes(fake_root, split, **options)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


def test_missing_folders_say_which_and_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError) as exc:
        find_scenes(tmp_path / "absent", "training")
    assert "dataset folder not found" in str(exc.value) and "absent" in str(exc.value)
    (tmp_path / "training" / "INPUT_IMAGES").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as exc:
        find_scenes(tmp_path, "training")
    message = str(exc.value)
    assert "\n" not in message
    assert f"missing folder {tmp_path / 'training' / 'GT_IMAGES'}" in message and "INPUT_IMAGES,GT_IMAGES" in message
    (tmp_path / "training" / "GT_IMAGES").mkdir()
    with pytest.raises(DatasetLayoutError, match="no complete scene in"):
        find_scenes(tmp_path, "training")


def test_two_files_for_one_exposure_is_an_error(tmp_path):
    _write_scene(tmp_path / "training", "dup")
    iio.imwrite(tmp_path / "training" / "INPUT_IMAGES" / "dup_0.jpg", _pattern(0))
    with pytest.raises(DatasetLayoutError, match="two files for scene 'dup' at EV 0"):
        find_scenes(tmp_path, "training")


# ----- pairs ---------------------------------------------------------------------------------
def test_paper_pair_counts_on_1181_test_scenes():
    index = _fake_index(1181)
    counts = {mode: len(ExposurePairs(index, mode)) for mode in ("low", "high", "all", "random")}
    assert counts == {"low": 1181, "high": 3543, "all": 11810, "random": 1181}


def test_fixed_pair_sets_are_the_papers():
    assert fixed_pairs("low") == (("N1.5", "N1"),)
    assert fixed_pairs("high") == (("0", "P1"), ("0", "P1.5"), ("P1", "P1.5"))
    pairs = fixed_pairs("all")
    assert len(set(pairs)) == 10 and all(EVS.index(a) < EVS.index(b) for a, b in pairs)
    with pytest.raises(DataOptionError, match="unknown pairs 'middle'"):
        ExposurePairs(_fake_index(1), "middle")


def test_random_pairs_differ_are_seeded_per_epoch_and_cover_all_pairs(monkeypatch):
    monkeypatch.setattr(loader_module, "read_image", lambda path: torch.zeros(3, 4, 4))
    dataset = ExposurePairs(_fake_index(100, "training"), "random", seed=3)
    epoch0 = [dataset[(i, 0)]["evs"] for i in range(100)]
    assert all(len(set(evs.split(","))) == 2 for evs in epoch0)
    assert epoch0 == [ExposurePairs(_fake_index(100, "training"), seed=3)[(i, 0)]["evs"] for i in range(100)]
    assert epoch0 != [dataset[(i, 1)]["evs"] for i in range(100)]
    assert epoch0 != [ExposurePairs(_fake_index(100, "training"), seed=4)[(i, 0)]["evs"] for i in range(100)]
    assert len(Counter(epoch0)) == 10


# ----- loader --------------------------------------------------------------------------------
def test_items_have_the_documented_types(fake_root):
    loader = build_loader(fake_root, "testing", pairs="all", batch_size=2)
    batch = next(iter(loader))
    assert batch["inputs"].dtype == torch.float32 and batch["inputs"].shape == (2, 2, 3, H, W)
    assert batch["target"].shape == (2, 3, H, W) and float(batch["target"].max()) <= 1
    assert batch["scene"] == ["t0", "t0"] and batch["evs"] == ["N1.5,N1", "N1.5,0"]
    assert len(loader.dataset) == 20 and loader.pin_memory == torch.cuda.is_available()
    assert not build_loader(fake_root, "testing", device="cpu").pin_memory


def test_crop_and_flip_are_identical_on_inputs_and_target(fake_root):
    loader = build_loader(fake_root, "training", crop=(8, 12), flip=True, batch_size=3, seed=5)
    flipped = set()
    for epoch in range(4):
        batch = next(iter(loader))
        assert batch["inputs"].shape == (3, 2, 3, 8, 12)
        for scene, inputs, target in zip(batch["scene"], batch["inputs"], batch["target"]):
            if scene == "a0003-dgw_146":  # JPEG inputs: not bit-exact
                continue
            assert torch.equal(inputs[0, :2], target[:2]) and torch.equal(inputs[1, :2], target[:2])
            flipped.add(bool(target[0, 0, 0] > target[0, 0, -1]))
    assert flipped == {True, False}


def test_loader_is_reproducible_per_seed_and_epoch_and_independent_of_workers(fake_root):
    def epochs(workers, seed, count=3):
        loader = build_loader(fake_root, "training", crop=8, flip=True, seed=seed, workers=workers)
        return [epoch_signatures(loader) for _ in range(count)]

    first = epochs(0, seed=1)
    assert first == epochs(2, seed=1)
    assert first[0] != first[1] and first != epochs(0, seed=2)
    loader = build_loader(fake_root, "training", crop=8, flip=True, seed=1)
    loader.set_epoch(1)
    assert epoch_signatures(loader) == first[1]


def test_each_file_is_decoded_once_per_item(fake_root, monkeypatch):
    reads = Counter()
    real = loader_module.read_image
    monkeypatch.setattr(loader_module, "read_image", lambda path: reads.update([path]) or real(path))
    for batch in build_loader(fake_root, "testing", pairs="all"):
        pass
    assert sum(reads.values()) == 3 * 20
    per_scene_target = {p.name: n for p, n in reads.items() if "expert" in p.parent.name}
    assert per_scene_target == {"t0.png": 10, "t1.png": 10}  # once per item: 10 pairs each


def test_shuffle_defaults_to_training_only(fake_root):
    assert [b["scene"][0] for b in build_loader(fake_root, "testing", pairs="low")] == ["t0", "t1"]
    orders = {tuple(b["scene"][0] for b in build_loader(fake_root, "training", seed=s)) for s in range(6)}
    assert len(orders) > 1


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_file_error_is_one_line_naming_it(fake_root, workers):
    with pytest.raises(ImageFileError) as exc:
        for _ in build_loader(fake_root, "validation", pairs="low", workers=workers):
            pass
    message = str(exc.value)
    assert "\n" not in message and message.startswith("cannot read image") and "v0-corrupt_N1.JPG" in message


def test_images_of_different_sizes_name_the_files(fake_root):
    dataset = ExposurePairs(_scan(fake_root, "validation"), "low")
    with pytest.raises(DatasetLayoutError) as exc:
        dataset[2]
    message = str(exc.value)
    assert "\n" not in message and "v2-big_gt_N1.5.png (24x32)" in message and "v2-big_gt.png (26x32)" in message


def test_crop_too_large_and_uneven_batches_are_clear(fake_root):
    with pytest.raises(DataOptionError, match=r"crop 64x64 is larger than scene 'a0001-MB_20030906_030' \(24x32\)"):
        next(iter(build_loader(fake_root, "training", crop=64, shuffle=False)))
    with pytest.raises(DataOptionError, match="crop must be"):
        build_loader(fake_root, "training", crop=(0, 4))
    index = _scan(fake_root, "validation")
    index.scenes = index.scenes[1:]  # the good scene and the one with a larger ground truth... and inputs
    dataset = ExposurePairs(index, "low")
    with pytest.raises(DataOptionError, match="cannot batch images of different sizes"):
        loader_module.collate_stacks([dataset[0], {**dataset[0], "target": torch.zeros(3, 5, 5)}])


def test_distributed_needs_a_process_group(fake_root):
    with pytest.raises(DataOptionError, match="torchrun"):
        build_loader(fake_root, "training", distributed=True)


def test_distributed_shards_with_a_seeded_sampler(fake_root, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        loader = build_loader(fake_root, "training", distributed=True, seed=7)
        assert isinstance(loader.sampler.ranks, torch.utils.data.DistributedSampler)
        assert sorted(b["scene"][0] for b in loader) == [s.name for s in _scan(fake_root, "training")]
    finally:
        dist.destroy_process_group()
