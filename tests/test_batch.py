"""``fusionkit fuse IN_DIR -o OUT_DIR``: every bracket of a folder fused by one command, resumable, a failed bracket
reported while the others are written; in worker processes and on a Dask cluster with the same outputs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fusionkit.cli.main import cli
from fusionkit.data.io import read_image
from fusionkit.inference.fuse import FuserOptions, fuse_files
from fusionkit.inference.prepare import BracketSteps

SCENES = ("alpha", "beta", "gamma")
#: The 64x48 photos have too little detail to align by: alignment is off throughout.
UNALIGNED = BracketSteps(align="none")


def write_photo(path: Path, seed: int, gain: float, taken: str | None = None) -> Path:
    """A 64x48 textured photo at ``gain``, as JPEG; ``taken`` ("YYYY:MM:DD HH:MM:SS") goes to EXIF DateTimeOriginal."""
    rng = np.random.default_rng(seed)
    texture = rng.random((6, 8, 3)).repeat(8, 0).repeat(8, 1)
    pixels = np.clip(texture * gain * 255, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three brackets, one subfolder each, of a dark and a bright photo."""
    root = tmp_path / "brackets"
    for seed, scene in enumerate(SCENES):
        write_photo(root / scene / "01.jpg", seed, 0.5)
        write_photo(root / scene / "02.jpg", seed, 1.6)
    return root


def fuse(*args: str):
    """``fusionkit fuse`` without alignment (see UNALIGNED)."""
    return CliRunner().invoke(cli, ["fuse", *map(str, args), "--align", "none"])


def summary_of(result) -> str:
    assert result.stdout.strip().splitlines()[-1].startswith("fused "), result.output
    return result.stdout.strip().splitlines()[-1].rsplit(" in ", 1)[0]


def pixels(path: Path) -> np.ndarray:
    return read_image(path).numpy()


def mtimes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


def test_every_subfolder_is_fused_with_one_model_as_fusing_it_alone_would(folder, tmp_path, monkeypatch):
    builds = []
    original = FuserOptions.build
    monkeypatch.setattr(FuserOptions, "build", lambda self: builds.append(self) or original(self))
    result = fuse(folder, "-o", tmp_path / "out", "--method", "mertens")
    assert result.exit_code == 0, result.output
    assert summary_of(result) == "fused 3 brackets, skipped 0 already done, 0 failed"
    assert len(builds) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{scene}.jpg" for scene in SCENES]
    for scene in SCENES:
        alone = fuse_files(sorted((folder / scene).iterdir()), tmp_path / f"{scene}-alone.jpg", method="mertens", steps=UNALIGNED)
        assert (tmp_path / "out" / f"{scene}.jpg").read_bytes() == alone.read_bytes()


def test_the_default_pretrained_student_fuses_a_folder(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: the shipped student
    result = fuse(folder, "-o", "out", "--format", "png")
    assert result.exit_code == 0, result.output
    assert summary_of(result) == "fused 3 brackets, skipped 0 already done, 0 failed"
    alone = fuse_files(sorted((folder / "beta").iterdir()), tmp_path / "beta.png", steps=UNALIGNED)
    assert np.array_equal(pixels(tmp_path / "out" / "beta.png"), pixels(alone))


@pytest.fixture
def loose(tmp_path) -> Path:
    """Seven photos shot in three bursts (at 0-1 s, 60-62 s and 200-201 s), their names out of shot order."""
    root = tmp_path / "loose"
    shots = [("IMG_9", 0, 0.5), ("IMG_10", 1, 1.6), ("IMG_11", 62, 1.8), ("IMG_12", 60, 0.4), ("IMG_13", 61, 1.0),
             ("IMG_14", 200, 0.5), ("IMG_15", 201, 1.6)]
    for k, (name, second, gain) in enumerate(shots):
        minute, second = divmod(second, 60)
        write_photo(root / f"{name}.jpg", k // 2, gain, f"2024:05:01 10:{minute:02d}:{second:02d}")
    return root


def test_loose_photos_are_grouped_by_the_time_between_shots(loose, tmp_path):
    result = fuse(loose, "-o", tmp_path / "out", "--group-gap", "10", "--method", "mean", "--format", "png")
    assert result.exit_code == 0, result.output
    assert summary_of(result) == "fused 3 brackets, skipped 0 already done, 0 failed"
    groups = {"IMG_9": ["IMG_9", "IMG_10"], "IMG_12": ["IMG_12", "IMG_13", "IMG_11"], "IMG_14": ["IMG_14", "IMG_15"]}
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == sorted(groups)
    for name, members in groups.items():
        alone = fuse_files([loose / f"{m}.jpg" for m in members], tmp_path / f"{name}.png", method="mean", steps=UNALIGNED)
        assert np.array_equal(pixels(tmp_path / "out" / f"{name}.png"), pixels(alone))


def test_loose_photos_are_grouped_by_count_in_file_name_order(loose, tmp_path):
    (loose / "IMG_15.jpg").unlink()
    result = fuse(loose, "-o", tmp_path / "out", "--group-size", "3", "--method", "mean")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_12.jpg", "IMG_9.jpg"]
    alone = fuse_files([loose / f"IMG_{k}.jpg" for k in (12, 13, 14)], tmp_path / "alone.jpg", method="mean", steps=UNALIGNED)
    assert (tmp_path / "out" / "IMG_12.jpg").read_bytes() == alone.read_bytes()


def one_line_error(result, text: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args, text", [
    ([], "holds 7 loose photos and no bracket subfolders: give --group-gap SECONDS or --group-size N"),
    (["--group-size", "2"], "--group-size 2: the 7 photos in"),
    (["--group-size", "1"], "--group-size 1: give 2 or more"),
    (["--group-gap", "5", "--group-size", "2"], "give --group-gap or --group-size, not both"),
    (["--group-gap", "-1"], "--group-gap -1.0: give 0 seconds or more"),
    (["--group-gap", "5", "-o", "LOOSE"], "is the folder of the photos"),
    (["--group-size", "7", "--format", "jpg", "--bits", "16"], "JPEG is 8-bit only"),
    (["--group-size", "7", "--workers", "0"], "--workers 0: give 1 or more"),
    (["--group-size", "7", "-o", "fused.jpg"], "-o fused.jpg: a folder of brackets is fused into a folder"),
], ids=["no-grouping", "count-does-not-divide", "size-1", "both", "negative-gap", "out-is-in", "jpeg-16-bit", "workers-0",
        "out-named-like-an-image"])
def test_a_request_no_batch_can_serve_is_one_line_and_writes_nothing(loose, tmp_path, monkeypatch, args, text):
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    output = ["-o", "out"] if "-o" not in args else []
    result = fuse(loose, *output, *[loose if a == "LOOSE" else a for a in args], "--method", "mean")
    one_line_error(result, text)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_photo_without_capture_time_is_named_for_group_gap(loose, tmp_path):
    write_photo(loose / "IMG_20.jpg", 9, 1.0)
    one_line_error(fuse(loose, "-o", tmp_path / "out", "--group-gap", "5", "--method", "mean"),
                   f"{loose / 'IMG_20.jpg'}: its EXIF records no capture time, which --group-gap groups by")


def test_folder_options_with_image_files_are_refused(folder, tmp_path):
    photos = sorted((folder / "alpha").iterdir())
    one_line_error(fuse(*photos, "-o", tmp_path / "f.png", "--overwrite"), "--overwrite applies to a folder of brackets")
    one_line_error(fuse(photos[0], folder / "beta", "-o", tmp_path / "f.png"), "is a folder")


def test_a_rerun_fuses_only_the_missing_outputs_and_overwrite_fuses_all(folder):
    out = folder / "fused"  # inside the input folder: never taken for a bracket
    assert fuse(folder, "-o", out, "--method", "mertens").exit_code == 0
    (out / "beta.jpg").unlink()
    before = mtimes(out)
    time.sleep(0.01)
    result = fuse(folder, "-o", out, "--method", "mertens")
    assert result.exit_code == 0, result.output
    assert summary_of(result) == "fused 1 brackets, skipped 2 already done, 0 failed"
    after = mtimes(out)
    assert sorted(after) == ["alpha.jpg", "beta.jpg", "gamma.jpg"]
    assert {name for name in after if before.get(name) != after[name]} == {"beta.jpg"}
    result = fuse(folder, "-o", out, "--method", "mertens", "--overwrite")
    assert summary_of(result) == "fused 3 brackets, skipped 0 already done, 0 failed"
    assert all(mtimes(out)[name] != after[name] for name in after)


def test_an_interrupted_batch_is_finished_by_a_rerun(folder, tmp_path, monkeypatch):
    import fusionkit.inference.batch as batch

    calls = []
    original = batch.fuse_exposures

    def interrupted_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(batch, "fuse_exposures", interrupted_at_the_second)
    result = fuse(folder, "-o", tmp_path / "out", "--method", "mertens")
    assert result.exit_code == 130 and result.stderr.strip() == "fusionkit: interrupted"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["alpha.jpg"]
    monkeypatch.setattr(batch, "fuse_exposures", original)
    result = fuse(folder, "-o", tmp_path / "out", "--method", "mertens")
    assert summary_of(result) == "fused 2 brackets, skipped 1 already done, 0 failed"


def test_a_batch_killed_after_its_first_output_is_finished_by_a_rerun(folder, tmp_path):
    """A real SIGKILL once the first output is there (later brackets are held back by a pause)."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import fusionkit.inference.batch as batch\n"
        "from fusionkit.cli.main import main\n"
        "original = batch.fuse_exposures\n"
        "def then_pause(*args, **kwargs):\n"
        "    if list(Path(sys.argv[-3]).iterdir()):  # the first output is written\n"
        "        time.sleep(60)\n"
        "    return original(*args, **kwargs)\n"
        "batch.fuse_exposures = then_pause\n"
        "main(sys.argv[1:])\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen([sys.executable, "-c", script, "fuse", str(folder), "--align", "none", "-o", str(out), "--method", "mertens"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "alpha.jpg").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["alpha.jpg"]
    result = fuse(folder, "-o", out, "--method", "mertens")
    assert summary_of(result) == "fused 2 brackets, skipped 1 already done, 0 failed"
    assert sorted(p.name for p in out.iterdir()) == ["alpha.jpg", "beta.jpg", "gamma.jpg"]


def test_a_broken_bracket_is_one_line_and_the_others_are_written(folder, tmp_path):
    (folder / "beta" / "02.jpg").write_bytes(b"not a JPEG at all")
    result = fuse(folder, "-o", tmp_path / "out", "--method", "mertens")
    line = one_line_error(result, f"Error: bracket beta: cannot read image {folder / 'beta' / '02.jpg'}")
    assert "not an image file, or corrupt" in line
    assert summary_of(result) == "fused 2 brackets, skipped 0 already done, 1 failed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alpha.jpg", "gamma.jpg"]


def test_two_worker_processes_write_the_same_outputs(folder, tmp_path):
    one = fuse(folder, "-o", tmp_path / "one", "--method", "mertens", "--format", "png")
    two = fuse(folder, "-o", tmp_path / "two", "--method", "mertens", "--format", "png", "--workers", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert summary_of(two) == "fused 3 brackets, skipped 0 already done, 0 failed"
    for scene in SCENES:
        assert np.array_equal(pixels(tmp_path / "two" / f"{scene}.png"), pixels(tmp_path / "one" / f"{scene}.png"))


def test_a_dask_cluster_writes_the_same_outputs(folder, tmp_path):
    distributed = pytest.importorskip("distributed")
    from fusionkit.inference.batch import fuse_brackets_on, fuse_folder
    from fusionkit.inference.folder_brackets import brackets_in

    options = FuserOptions(method="mertens")
    brackets = brackets_in(folder)[:2]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        summary = fuse_brackets_on(client, brackets, tmp_path / "dask", options, image_format="png")
    assert (summary.fused, summary.skipped, summary.failed) == (2, 0, [])
    fuse_folder(folder, tmp_path / "local", options, image_format="png")
    for bracket in brackets:
        assert np.array_equal(pixels(tmp_path / "dask" / f"{bracket.name}.png"), pixels(tmp_path / "local" / f"{bracket.name}.png"))
