"""The embedded sample set: bracket layout, splits by photo, EV spread, determinism, caching, the CLI and the camera's PSNR."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fusionkit.cli.data import data
from fusionkit.data import DatasetLayoutError, build_loader, detect_layout, find_brackets
from fusionkit.data.manifest import SAMPLE_MANIFEST
from fusionkit.synthetic import default_sample_dir, ensure_sample, read_manifest
from fusionkit.synthetic.camera import random_look, render_exposure
from fusionkit.synthetic.render import GAP_EV
from fusionkit.synthetic.sample import LOCK, PHOTOS

SMALL = {"max_scenes": 12, "size": (24, 32)}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != LOCK}


def _photo_of(scene: str) -> str:
    return scene.rsplit("_", 1)[0]


@pytest.fixture(scope="module")
def full_set(tmp_path_factory) -> Path:
    """The real default set, made once for the module (a few seconds)."""
    return ensure_sample(tmp_path_factory.mktemp("full") / "sample")


def test_default_set_size_splits_and_layout(full_set):
    manifest = read_manifest(full_set)
    counts = {split: len(names) for split, names in manifest["scenes"].items()}
    total = sum(counts.values())
    assert 40 <= total <= 60 and counts["test"] >= 8 and counts["val"] >= 4
    assert 0.6 <= counts["train"] / total <= 0.75
    photos = {split: {_photo_of(s) for s in names} for split, names in manifest["scenes"].items()}
    assert not (photos["train"] & photos["test"]) and not (photos["val"] & (photos["train"] | photos["test"]))
    assert {"motorcycle_left", "motorcycle_right"} & photos["train"] == {"motorcycle_left", "motorcycle_right"}
    assert detect_layout(full_set) == "brackets"
    for split in ("train", "val", "test"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing skipped
            scenes = find_brackets(full_set, split)
        assert [s.name for s in scenes] == sorted(manifest["scenes"][split])
        assert all(s.labels == ["01", "02", "03", "04", "05"] and s.reference.parent.name == "reference" for s in scenes)
    batch = next(iter(build_loader(full_set, "testing", pairs="all", batch_size=2)))
    assert batch["inputs"].shape == (2, 2, 3, 288, 384) and batch["evs"] == ["01,05", "01,05"]
    assert batch["target"].shape == (2, 3, 288, 384)


def test_each_scene_spreads_five_evs_over_a_drawn_gap(full_set):
    evs = read_manifest(full_set)["evs"]
    gaps = [e[-1] - e[0] for e in evs.values()]
    assert all(len(e) == 5 and e == sorted(e) and e[0] < 0 < e[-1] for e in evs.values())
    assert all(GAP_EV[0] <= gap <= GAP_EV[1] for gap in gaps) and max(gaps) - min(gaps) > 2


def test_camera_rendering_is_as_far_from_ground_truth_as_documented(full_set):
    psnr = read_manifest(full_set)["psnr_db"]
    assert 18 <= psnr["03"] <= 25
    assert psnr["01"] < psnr["02"] < psnr["03"] and psnr["05"] < psnr["04"] < psnr["03"]


def test_camera_brightens_with_ev_clips_and_is_seeded():
    photo = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    look = random_look(np.random.default_rng(1))
    renders = [render_exposure(photo, ev, look, np.random.default_rng(2)) for ev in (-1.5, -1, 0, 1, 1.5)]
    assert all(r.dtype == np.uint8 and r.shape == photo.shape for r in renders)
    means = [float(r.mean()) for r in renders]
    assert means == sorted(means) and (renders[-1] == 255).mean() > (renders[0] == 255).mean()
    assert np.array_equal(renders[2], render_exposure(photo, 0, look, np.random.default_rng(2)))


def test_second_call_is_instant_and_touches_nothing(full_set):
    before = {p: p.stat().st_mtime_ns for p in full_set.rglob("*")}
    start = time.perf_counter()
    assert ensure_sample(full_set) == full_set
    assert time.perf_counter() - start < 0.5
    assert {p: p.stat().st_mtime_ns for p in full_set.rglob("*")} == before


def test_cli_writes_byte_identical_sets_and_contact_sheets(tmp_path):
    runner = CliRunner()
    first = runner.invoke(data, ["sample", str(tmp_path / "a"), "--max-scenes", "10", "--sheet", str(tmp_path / "sheet.jpg")])
    assert first.exit_code == 0, first.output
    assert "sample set in" in first.output and "mean PSNR vs reference by exposure (dB): 01:" in first.output
    second = runner.invoke(data, ["sample", str(tmp_path / "b"), "--max-scenes", "10"])
    assert second.exit_code == 0, second.output
    files = _files(tmp_path / "a")
    assert len(files) == 10 * 6 + 1 and files == _files(tmp_path / "b")
    assert (tmp_path / "sheet.jpg").stat().st_size > 1000

    unknown = runner.invoke(data, ["sample", str(tmp_path / "a"), "--max-scenes", "10", "--sheet", "x.jpg", "--scene", "nope"])
    assert unknown.exit_code == 1 and unknown.output.count("\n") == 1 and "no scene 'nope'" in unknown.output


def test_incomplete_or_changed_sets_are_rewritten(tmp_path):
    root = ensure_sample(tmp_path / "s", **SMALL)
    reference = _files(root)
    victim = root / "test" / "inputs" / "coffee_00" / "04.jpg"
    victim.unlink()
    ensure_sample(root, **SMALL)
    assert _files(root) == reference

    manifest = json.loads((root / SAMPLE_MANIFEST).read_text())
    (root / SAMPLE_MANIFEST).write_text(json.dumps({**manifest, "complete": False}))  # as if interrupted
    ensure_sample(root, **SMALL)
    assert _files(root) == reference

    ensure_sample(root, max_scenes=7, size=(24, 32))  # a smaller set leaves none of the old files or folders behind
    assert len(_files(root)) == 7 * 6 + 1
    assert all(any(folder.iterdir()) for folder in root.rglob("*") if folder.is_dir())


def test_a_set_in_the_old_layout_is_replaced_without_leftovers(tmp_path):
    """Version 1 wrote Afifi et al.'s layout; its files and folders go, so the layout detected is brackets."""
    old = {"training/INPUT_IMAGES/astronaut_00_N1.5.JPG": 3, "training/GT_IMAGES/astronaut_00.jpg": 3}
    for relative in old:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"old")
    (tmp_path / SAMPLE_MANIFEST).write_text(json.dumps({"version": 1, "complete": True, "files": old}))
    ensure_sample(tmp_path, **SMALL)
    assert not (tmp_path / "training").exists() and detect_layout(tmp_path) == "brackets"


def test_reduced_set_keeps_every_split(tmp_path):
    root = ensure_sample(tmp_path / "s", **SMALL)
    scenes = read_manifest(root)["scenes"]
    assert all(scenes[split] for split in ("train", "val", "test"))
    assert find_brackets(root, "training")[0].reference.name.endswith(".jpg")
    assert [path.name for path in find_brackets(root, "testing")[0].exposures] == [f"0{n}.jpg" for n in range(1, 6)]


def test_refuses_to_write_into_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetLayoutError) as exc:
        ensure_sample(tmp_path, **SMALL)
    assert "not empty" in str(exc.value) and str(tmp_path) in str(exc.value)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_default_dir_follows_fusionkit_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONKIT_HOME", str(tmp_path))
    assert default_sample_dir() == tmp_path / "sample"
    monkeypatch.delenv("FUSIONKIT_HOME")
    assert default_sample_dir() == Path.home() / ".cache" / "fusionkit" / "sample"


def test_photo_table_names_each_photo_once():
    names = [p.name for p in PHOTOS]
    assert len(names) == len(set(names)) and {p.split for p in PHOTOS} == {"train", "val", "test"}
