"""Brackets: both folder layouts, K exposures per item, the dataset components, and `fusionkit data render`."""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fusionkit
import fusionkit.data.loader as loader_module
from fusionkit.cli.data import data
from fusionkit.data import (
    Bracket,
    DataOptionError,
    DatasetLayoutError,
    ExposureStacks,
    build_loader,
    detect_layout,
    find_brackets,
)
from fusionkit.data.manifest import RENDER_MANIFEST
from fusionkit.errors import ComponentOptionError, FusionkitWarning, UnknownComponentError
from fusionkit.plugins import set_registry
from fusionkit.registry import Registry
from fusionkit.synthetic import render_photos
from tests.fake_exposure_data import bracket_pattern, epoch_signatures, make_fake_brackets, make_fake_dataset

H, W = 24, 32
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUSIONKIT_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="module")
def sice(tmp_path_factory) -> Path:
    """train: 4 scenes of 3, 5, 7, 3 exposures; test: 2 scenes of 5 and 7; with references."""
    return make_fake_brackets(tmp_path_factory.mktemp("sice"), {"train": 4, "test": 2}, exposures=[3, 5, 7])


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """Brackets without reference: 3 training scenes of 4 exposures, 2 test scenes."""
    return make_fake_brackets(tmp_path_factory.mktemp("brackets"), {"train": 3, "test": 2}, exposures=4, reference=False)


def _exposure_numbers(inputs: torch.Tensor) -> list[int]:
    """Which exposure NN each image of a (K, 3, H, W) stack is, from its blue channel (20 * NN)."""
    return [round(float(image[2].mean()) * 255 / 20) for image in inputs]


# ----- scanning ------------------------------------------------------------------------------
def test_both_layouts_are_found_with_and_without_reference(sice, plain):
    scenes = find_brackets(sice, "train")
    assert [s.name for s in scenes] == ["train00", "train01", "train02", "train03"]
    assert [len(s.exposures) for s in scenes] == [3, 5, 7, 3]
    assert scenes[0].exposures[0] == sice / "train" / "inputs" / "train00" / "01.png"
    assert scenes[0].reference == sice / "train" / "reference" / "train00.png" and scenes[0].labels == ["01", "02", "03"]
    bare = find_brackets(plain, "test")
    assert [s.name for s in bare] == ["test00", "test01"] and all(s.reference is None for s in bare)
    assert bare[1].exposures[-1] == plain / "test" / "test01" / "04.png"
    assert detect_layout(sice) == detect_layout(plain) == "brackets"


def test_split_aliases_both_ways_and_a_split_folder_as_root(sice, tmp_path):
    assert find_brackets(sice, "training") == find_brackets(sice, "train")
    assert [s.name for s in find_brackets(sice / "test", "training")] == ["test00", "test01"]  # the folder itself
    make_fake_brackets(tmp_path, {"validation": 1}, reference=False)
    assert find_brackets(tmp_path, "val")[0].name == "validation00"
    with pytest.raises(DatasetLayoutError) as exc:
        find_brackets(sice, "val")
    message = str(exc.value)
    assert "\n" not in message and f"no 'val' split in {sice} (it has test, train)" in message and "inputs/<scene>" in message


def test_exposures_are_ordered_darkest_first_by_file_name(tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    for number in (10, 2, 1):
        iio.imwrite(scene / f"{number}.png", bracket_pattern(number, (4, 4)))
    (scene / "notes.txt").write_text("ignored")
    (bracket,) = find_brackets(tmp_path, "test")
    assert bracket.labels == ["1", "2", "10"]


def test_scenes_with_one_exposure_or_no_reference_are_skipped_with_a_warning(tmp_path):
    make_fake_brackets(tmp_path, {"train": 3}, exposures=[3, 1, 3])
    (tmp_path / "train" / "reference" / "train02.png").unlink()
    with pytest.warns(FusionkitWarning) as caught:
        scenes = find_brackets(tmp_path, "train")
    assert [s.name for s in scenes] == ["train00"]
    message = str(caught[0].message)
    assert "\n" not in message and "skipped 2 of 3 scenes" in message
    assert "1 with fewer than two exposures (e.g. 'train01')" in message and "1 without a reference (e.g. 'train02')" in message


def test_empty_or_missing_folders_and_duplicate_references_are_one_line_errors(tmp_path):
    for folder, expected in ((tmp_path / "absent", "dataset folder not found"), (tmp_path, "no scene with two or more exposures")):
        with pytest.raises(DatasetLayoutError) as exc:
            find_brackets(folder, "test")
        message = str(exc.value)
        assert "\n" not in message and expected in message and str(folder) in message and "(sice)" in message
    make_fake_brackets(tmp_path / "dup", {"test": 1})
    iio.imwrite(tmp_path / "dup" / "test" / "reference" / "test00.jpg", bracket_pattern(0, (H, W)))
    with pytest.raises(DatasetLayoutError, match="two references for scene 'test00'"):
        find_brackets(tmp_path / "dup", "test")


def test_layout_detection(tmp_path, sice):
    assert detect_layout(make_fake_dataset(tmp_path / "afifi", train=1, val=1, test=1, size=16)) == "exposure_errors"
    with pytest.raises(DatasetLayoutError, match="dataset folder not found"):
        detect_layout(tmp_path / "absent")
    with pytest.raises(DataOptionError, match="read as pairs"):
        build_loader(tmp_path / "afifi", "test", exposures=3)


# ----- items and batches ---------------------------------------------------------------------
def test_random_draws_are_k_distinct_darkest_first_and_seeded_per_epoch(monkeypatch):
    monkeypatch.setattr(loader_module, "read_image", lambda path: torch.zeros(3, 4, 4))
    scenes = [Bracket(f"s{i}", [Path(f"s{i}/{n:02d}.jpg") for n in range(1, 8)], None) for i in range(60)]

    def draws(seed, epoch, k=3):
        dataset = ExposureStacks(scenes, "random", exposures=k, seed=seed)
        return [dataset[(i, epoch)]["evs"] for i in range(len(scenes))]

    epoch0 = draws(1, 0)
    assert all(len(set(evs.split(","))) == 3 and evs.split(",") == sorted(evs.split(",")) for evs in epoch0)
    assert epoch0 == draws(1, 0) and epoch0 != draws(1, 1) and epoch0 != draws(2, 0)
    assert len(Counter(epoch0)) > 20  # of the 35 triples of 7
    assert {e.count(",") for e in draws(1, 0, k=7)} == {6}


@pytest.mark.filterwarnings("ignore::fusionkit.errors.FusionkitWarning")  # K = 4 skips the 3-exposure scenes
@pytest.mark.parametrize(
    "exposures, expected",
    [(2, "01,07"), (3, "01,04,07"), (4, "01,03,05,07"), ("all", "01,02,03,04,05,06,07")],
)
def test_evaluation_picks_extremes_evenly_spread_or_all(sice, exposures, expected):
    loader = build_loader(sice, "train", pairs="all", exposures=exposures)
    items = {item["scene"]: item for item in (loader.dataset[i] for i in range(len(loader.dataset)))}
    assert items["train02"]["evs"] == expected
    assert _exposure_numbers(items["train02"]["inputs"]) == [int(n) for n in expected.split(",")]


def test_scenes_with_fewer_than_k_exposures_are_skipped_with_a_warning(sice):
    with pytest.warns(FusionkitWarning, match=r"skipped 2 of 4 scenes with fewer than 5 exposures \(e.g. 'train00': 3\)"):
        loader = build_loader(sice, "train", exposures=5)
    assert [loader.dataset[i]["scene"] for i in range(len(loader.dataset))] == ["train01", "train02"]
    with pytest.raises(DataOptionError, match="none left"):
        build_loader(sice, "train", exposures=8)
    for bad in (1, "most", 2.0, True):
        with pytest.raises(DataOptionError, match="exposures must be"):
            build_loader(sice, "train", exposures=bad)


def test_batches_have_the_documented_shapes_and_target_none_without_reference(sice, plain):
    batch = next(iter(build_loader(sice, "test", pairs="all", batch_size=2)))
    assert batch["inputs"].dtype == torch.float32 and batch["inputs"].shape == (2, 2, 3, H, W)
    assert batch["target"].shape == (2, 3, H, W) and round(float(batch["target"][0, 2].mean()) * 255) == 250
    assert batch["scene"] == ["test00", "test01"] and batch["evs"] == ["01,05", "01,07"]
    for workers in (0, 2):
        bare = next(iter(build_loader(plain, "train", crop=8, flip=True, batch_size=3, workers=workers, exposures=3)))
        assert bare["target"] is None and bare["inputs"].shape == (3, 3, 3, 8, 8) and len(bare["evs"]) == 3


def test_crop_and_flip_are_identical_on_exposures_and_reference(sice):
    loader = build_loader(sice, "train", crop=(8, 12), flip=True, batch_size=4, seed=3)
    flipped = set()
    for _ in range(4):
        batch = next(iter(loader))
        for inputs, target in zip(batch["inputs"], batch["target"]):
            assert all(torch.equal(image[:2], target[:2]) for image in inputs)
            flipped.add(bool(target[0, 0, 0] > target[0, 0, -1]))
    assert flipped == {True, False}


def test_loader_is_reproducible_per_seed_and_epoch_like_a_resumed_run(sice):
    def epochs(workers, seed, count=3):
        loader = build_loader(sice, "train", crop=8, flip=True, seed=seed, workers=workers)
        return [epoch_signatures(loader) for _ in range(count)]

    first = epochs(0, seed=1)
    assert first == epochs(2, seed=1)
    assert first[0] != first[1] and first != epochs(0, seed=2)
    resumed = build_loader(sice, "train", crop=8, flip=True, seed=1)
    resumed.set_epoch(2)
    assert epoch_signatures(resumed) == first[2]


def test_uneven_batches_are_clear_errors(tmp_path, sice):
    make_fake_brackets(tmp_path / "a", {"test": 1}, size=(H, W))
    make_fake_brackets(tmp_path / "b", {"test": 1}, size=(H + 4, W))
    (tmp_path / "b" / "test" / "inputs" / "test00").rename(tmp_path / "a" / "test" / "inputs" / "test01")
    (tmp_path / "b" / "test" / "reference" / "test00.png").rename(tmp_path / "a" / "test" / "reference" / "test01.png")
    with pytest.raises(DataOptionError) as exc:
        next(iter(build_loader(tmp_path / "a", "test", batch_size=2)))
    assert "\n" not in str(exc.value) and "cannot batch images of different sizes (test00 24x32, test01 28x32)" in str(exc.value)
    with pytest.raises(DataOptionError, match="different numbers of exposures"):
        next(iter(build_loader(sice, "train", exposures="all", batch_size=2, shuffle=False)))


def test_cache_decodes_each_file_once_and_max_side_downscales(sice, monkeypatch):
    reads = Counter()
    real = loader_module.read_image
    monkeypatch.setattr(loader_module, "read_image", lambda path: reads.update([path]) or real(path))
    cached = build_loader(sice, "test", pairs="all", exposures="all")
    first = [b["inputs"] for b in cached]
    second = [b["inputs"] for b in cached]
    assert max(reads.values()) == 1 and all(torch.equal(a, b) for a, b in zip(first, second))
    uncached = [b["inputs"] for b in build_loader(sice, "test", pairs="all", exposures="all", cache=False)]
    assert all(torch.equal(a, b) for a, b in zip(first, uncached))
    small = next(iter(build_loader(sice, "test", pairs="all", max_side=16)))
    assert small["inputs"].shape[-2:] == (12, 16) and small["target"].shape[-2:] == (12, 16)


# ----- dataset components --------------------------------------------------------------------
def _datasets_module():
    """plugins/fusionkit_common/datasets.py, loaded from its file (the plugin's other modules are not needed)."""
    path = REPO / "plugins" / "fusionkit_common" / "datasets.py"
    spec = importlib.util.spec_from_file_location("fusionkit_common_datasets_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dataset_registry(restore_registry):
    datasets = _datasets_module()
    registry = Registry()
    registry.register("dataset", "exposure_errors", datasets.ExposureErrorsDataset, plugin="fusionkit")
    registry.register("dataset", "brackets", datasets.BracketsDataset, plugin="fusionkit")
    set_registry(registry)
    return registry


def test_dataset_components_build_loaders_through_the_registry(dataset_registry, sice, tmp_path):
    batch = next(iter(build_loader(sice, "test", pairs="all", dataset="brackets")))
    assert batch["inputs"].shape == (1, 2, 3, H, W) and batch["evs"] == ["01,05"]
    afifi = make_fake_dataset(tmp_path / "afifi", train=1, val=1, test=1, size=16)
    loader = build_loader(afifi, "test", pairs="low", dataset="exposure_errors", expert="c")
    assert next(iter(loader))["evs"] == ["N1.5,N1"]
    with pytest.raises(ComponentOptionError, match="has no option 'expert'"):
        build_loader(sice, "test", dataset="brackets", dataset_options={"expert": "a"})
    with pytest.raises(UnknownComponentError, match="no dataset named 'bracket' \\(did you mean 'brackets'"):
        build_loader(sice, "test", dataset="bracket")

    def odd(root, split):
        """A plugin dataset that returns the wrong thing."""
        return {"scenes": []}

    dataset_registry.register("dataset", "odd", odd)
    with pytest.raises(DataOptionError, match="returned dict; a dataset component returns"):
        build_loader(sice, "test", dataset="odd")


def test_installed_plugin_registers_both_dataset_components():
    names = {c.name for c in fusionkit.available("dataset")}
    if not {"exposure_errors", "brackets"} & names:
        pytest.skip("fusionkit_common does not register its dataset components (plugins/fusionkit_common/__init__.py)")
    assert {"exposure_errors", "brackets"} <= names


# ----- fusionkit data render -----------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four small photos, one in a subfolder and one a PNG."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:30, 0:40] / 40
    for i, name in enumerate(("a.jpg", "b.jpg", "c.png", "sub/d.jpg")):
        base = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, np.full_like(x, 0.2 + 0.15 * i)], -1)
        pixels = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
        (root / name).parent.mkdir(exist_ok=True)
        iio.imwrite(root / name, (pixels * 255).astype(np.uint8))
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "lock" not in p.name}


def test_render_writes_the_sice_layout_deterministically(photos, tmp_path):
    runner = CliRunner()
    result = runner.invoke(data, ["render", str(photos), str(tmp_path / "one"), "--exposures", "4", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "[4/4] sub_d" in result.stderr and "rendered set in" in result.stdout and "PSNR vs reference" in result.stdout
    manifest = json.loads((tmp_path / "one" / RENDER_MANIFEST).read_text())
    scenes = {name: split for split, names in manifest["scenes"].items() for name in names}
    assert sorted(scenes) == ["a", "b", "c", "sub_d"] and manifest["complete"]
    for name, split in scenes.items():
        (bracket,) = [b for b in find_brackets(tmp_path / "one", split) if b.name == name]
        assert bracket.labels == ["01", "02", "03", "04"] and bracket.reference.name == f"{name}.jpg"
        means = [iio.imread(f).mean() for f in bracket.exposures]
        assert means == sorted(means) and len(manifest["evs"][name]) == 4
        evs = manifest["evs"][name]
        assert 3.5 <= evs[-1] - evs[0] <= 6.5 and evs[0] < -1.5 and evs[-1] > 1.5
    assert runner.invoke(data, ["render", str(photos), str(tmp_path / "two"), "--exposures", "4", "--seed", "5"]).exit_code == 0
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    runner.invoke(data, ["render", str(photos), str(tmp_path / "three"), "--exposures", "4", "--seed", "6"])
    assert _files(tmp_path / "one").keys() == _files(tmp_path / "three").keys() != _files(tmp_path / "one")


def test_render_split_and_size_options_and_a_second_call_touches_nothing(photos, tmp_path):
    out = tmp_path / "all_train"
    manifest = render_photos(photos, out, exposures=2, size=20, split="train")
    assert {split: len(names) for split, names in manifest["scenes"].items()} == {"train": 4, "val": 0, "test": 0}
    assert iio.imread(out / "train" / "inputs" / "a" / "01.jpg").shape == (15, 20, 3)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    render_photos(photos, out, exposures=2, size=20, split="train", progress=lambda *a: pytest.fail("rendered again"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(DatasetLayoutError, match="pass overwrite "):  # other options: refused without overwrite
        render_photos(photos, out, exposures=3, size=20, split="train")
    render_photos(photos, out, exposures=3, size=20, split="train", overwrite=True)  # rewritten, nothing stale left
    assert {p.name for p in (out / "train" / "inputs" / "a").iterdir()} == {"01.jpg", "02.jpg", "03.jpg"}


def test_render_refuses_foreign_out_and_reports_bad_photos_in_one_line(photos, tmp_path):
    runner = CliRunner()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "mine.txt").write_text("keep me")
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(photos), str(tmp_path / "foreign")], "is not empty and holds no set written by `fusionkit data render`"),
        ([str(tmp_path / "absent"), str(tmp_path / "o1")], "photos folder not found"),
        ([str(tmp_path / "empty"), str(tmp_path / "o2")], "no images (.jpg"),
        ([str(photos), str(photos / "out")], "is inside the photos folder"),
        ([str(photos), str(tmp_path / "o3"), "--val-fraction", "0.6", "--test-fraction", "0.5"], "sum below 1"),
    ]
    for args, expected in cases:
        result = runner.invoke(data, ["render", *args])
        assert result.exit_code == 1 and expected in result.output and result.output.count("\n") == 1, result.output
    assert [p.name for p in (tmp_path / "foreign").iterdir()] == ["mine.txt"]


# ----- the real data beside the repository ---------------------------------------------------
def test_real_brackets_and_sice_test_splits():
    if not ((SHARED / "brackets").is_dir() and (SHARED / "sice").is_dir()):
        pytest.skip(f"no real data in {SHARED} (set FUSIONKIT_SHARED_DATA to the folder holding brackets/ and sice/)")
    brackets = find_brackets(SHARED / "brackets", "test")
    assert len(brackets) == 19 and all(b.reference is None and len(b.exposures) >= 3 for b in brackets)
    sice = find_brackets(SHARED / "sice", "testing")
    assert len(sice) == 4 and all(b.reference is not None and len(b.exposures) == 2 for b in sice)
    batch = next(iter(build_loader(SHARED / "sice", "test", pairs="all", max_side=96)))
    assert max(batch["inputs"].shape[-2:]) == 96 and batch["target"].shape[-2:] == batch["inputs"].shape[-2:]
