"""The data layer under hostile or unlucky conditions (issue #22): a pixel limit read from each file's
header, photos of extreme aspect ratio, rendered sets that are neither replaced nor half-used
silently, folders that cannot be written, the contact sheet, and temporary files a killed writer left.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

import fusionkit.data.io as io_module
import fusionkit.synthetic.render as render_module
from fusionkit.data.errors import DataOptionError, DatasetLayoutError, ImageFileError
from fusionkit.data.io import read_image, write_image
from fusionkit.data.loader import build_loader
from fusionkit.data.manifest import SAMPLE_MANIFEST
from fusionkit.synthetic import ensure_sample
from tests.test_cli_reliability import TEACHER_ONLY, TINY_ARGS, assert_one_line_error, invoke, read_only, snapshot

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def default_limit(monkeypatch):
    """Every test starts from the default pixel limit, and `--max-pixels` (which sets the variable) leaks into no other test."""
    monkeypatch.delenv("FUSIONKIT_MAX_PIXELS", raising=False)


# ----- one pixel limit, read from the header -------------------------------------------------
def png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 PNG whose header (IHDR, CRC recomputed) declares ``width`` x ``height`` pixels."""
    iio.imwrite(path, np.zeros((1, 1, 3), np.uint8))
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def tiff_bomb(tmp_path_factory) -> Path:
    """A 5 MB zlib TIFF of 20000x20000 RGB pixels: 1.2 GB decoded, 4.8 GB more as float32."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.tif"
    tile = np.zeros((1024, 1024, 3), np.uint8)
    tifffile.imwrite(path, (tile for _ in range(20 * 20)), shape=(20000, 20000, 3), dtype=np.uint8, tile=(1024, 1024),
                     compression="zlib", compressionargs={"level": 1}, photometric="rgb")
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if a decoder runs: a file above the limit must be refused from its header alone."""
    monkeypatch.setattr(iio, "imread", lambda *args, **kwargs: pytest.fail("the pixels were decoded"))


@pytest.mark.parametrize("kind", ["tiff", "png"])
def test_a_file_declaring_400_megapixels_is_refused_from_its_header(tiff_bomb, tmp_path, no_decoding, kind):
    path = tiff_bomb if kind == "tiff" else png_declaring(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageFileError) as caught:
        read_image(path)
    message = str(caught.value)
    assert str(path) in message and "20000x20000" in message and f"{io_module.DEFAULT_MAX_PIXELS:,}" in message
    assert "max_pixels" in message and "\n" not in message


def test_fuse_refuses_the_tiff_bomb_in_one_line(tiff_bomb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image("small.png", torch.rand(3, 8, 8))
    assert_one_line_error(invoke("fuse", tiff_bomb, "small.png", "-o", "f.png", "--method", "mean"), str(tiff_bomb))
    assert not Path("f.png").exists()


def test_the_default_limit_admits_a_100_megapixel_photo_without_a_warning(tmp_path, monkeypatch):
    """11656x8742 is the largest of the 100 MP cameras (Hasselblad X2D; Fujifilm GFX100: 11648x8736)."""
    assert io_module.DEFAULT_MAX_PIXELS >= 11656 * 8742
    path = png_declaring(tmp_path / "x2d.png", 11656, 8742)
    monkeypatch.setattr(iio, "imread", lambda *args, **kwargs: np.zeros((2, 2, 3), np.uint8))  # header checked, nothing decoded
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's own guard would warn above 89 MP
        assert read_image(path).shape == (3, 2, 2)


@pytest.mark.parametrize("name", ["photo.png", "photo.jpg", "photo.tif", "photo16.png"])
def test_fusionkit_max_pixels_sets_the_limit_for_every_format(tmp_path, monkeypatch, name):
    if name == "photo16.png":
        pytest.importorskip("cv2")
    path = tmp_path / name
    write_image(path, torch.rand(3, 30, 40), bits=16 if "16" in name else 8)
    monkeypatch.setenv("FUSIONKIT_MAX_PIXELS", "1199")
    with pytest.raises(ImageFileError, match="40x30 pixels") as caught:
        read_image(path)
    assert str(path) in str(caught.value) and "1,199" in str(caught.value)
    for allowed in ("1200", "0"):  # 0: no limit
        monkeypatch.setenv("FUSIONKIT_MAX_PIXELS", allowed)
        assert read_image(path).shape == (3, 30, 40)


@pytest.mark.parametrize("value", ["many", "-5", "1.5"])
def test_a_bad_fusionkit_max_pixels_is_one_line(tmp_path, monkeypatch, value):
    write_image(tmp_path / "photo.png", torch.rand(3, 8, 8))
    monkeypatch.setenv("FUSIONKIT_MAX_PIXELS", value)
    with pytest.raises(DataOptionError, match=f"FUSIONKIT_MAX_PIXELS={value}"):
        read_image(tmp_path / "photo.png")


def test_max_pixels_option_sets_the_limit_for_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("under.png", "over.png"):
        write_image(name, torch.rand(3, 30, 40))
    line = assert_one_line_error(invoke("--max-pixels", 1000, "fuse", "under.png", "over.png", "-o", "f.png", "--method", "mean"), "under.png")
    assert "40x30" in line and "1,000" in line and not Path("f.png").exists()
    assert invoke("--max-pixels", 0, "fuse", "under.png", "over.png", "-o", "f.png", "--method", "mean").exit_code == 0
    assert invoke("--max-pixels", -1, "fuse", "under.png", "over.png", "-o", "g.png", "--method", "mean").exit_code == 2


# ----- extreme aspect ratios ------------------------------------------------------------------
@pytest.mark.parametrize("height, width, method", [
    (10, 10000, None), (10000, 10, None), (1, 10000, None), (10, 10000, "mertens"),
], ids=["10000x10", "10x10000", "10000x1", "10000x10-mertens"])
def test_fuse_handles_a_long_thin_photo_at_the_default_work_size(tmp_path, monkeypatch, height, width, method):
    monkeypatch.chdir(tmp_path)  # no runs/ here: the pretrained student fuses
    ramp = torch.linspace(0, 1, width).expand(3, height, width)
    write_image("under.png", ramp * 0.4)
    write_image("over.png", (ramp * 0.5 + 0.5))
    result = invoke("fuse", "under.png", "over.png", "-o", "f.png", *(["--method", method] if method else []))
    assert result.exit_code == 0, result.output
    assert iio.imread("f.png").shape == (height, width, 3)


# ----- rendered sets: never replaced silently, never half-used --------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three small photos."""
    root = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(("a.jpg", "b.jpg", "c.png")):
        write_image(root / name, torch.rand(3, 30, 40) * (0.5 + 0.2 * i))
    return root


def test_render_into_a_folder_holding_another_set_is_refused_unless_overwrite(photos, tmp_path):
    out = tmp_path / "set"
    assert invoke("data", "render", photos, out, "--exposures", "2", "--split", "train").exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    line = assert_one_line_error(invoke("data", "render", photos, out, "--exposures", "3", "--split", "train"), str(out))
    assert "--overwrite" in line and snapshot(out) == before
    result = invoke("data", "render", photos, out, "--exposures", "3", "--split", "train", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "train" / "inputs" / "a").iterdir()) == ["01.jpg", "02.jpg", "03.jpg"]
    assert (out / "notes.txt").read_text() == "mine"  # only the files the earlier manifest listed were replaced


def test_an_interrupted_render_is_refused_by_the_readers_until_rendered_again(photos, tmp_path, monkeypatch):
    out, run = tmp_path / "set", tmp_path / "run"
    render = ["data", "render", photos, out, "--exposures", "2", "--split", "train"]
    real = render_module.render_bracket
    calls = []

    def interrupted_at_the_second_scene(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(render_module, "render_bracket", interrupted_at_the_second_scene)
    result = invoke(*render)  # stderr: the progress line of the first scene, then the interruption
    assert result.exit_code == 130 and result.stderr.splitlines()[1:] == ["fusionkit: interrupted"], result.output
    assert (out / "train" / "inputs" / "a" / "01.jpg").is_file()  # half a set is there
    for root in (out, out / "train"):
        with pytest.raises(DatasetLayoutError, match="rerun `fusionkit data render"):
            build_loader(root, "train")
    assert_one_line_error(invoke("train", "--data", out, "--run-dir", run, *TINY_ARGS, *TEACHER_ONLY), "fusionkit data render")
    assert not run.exists()
    monkeypatch.setattr(render_module, "render_bracket", real)
    assert invoke(*render).exit_code == 0
    assert len(build_loader(out, "train")) == 3


# ----- folders that cannot be written ---------------------------------------------------------
def data_command(command: str, photos: Path, out: Path) -> list:
    return ["data", "render", photos, out] if command == "render" else ["data", "sample", out, "--max-scenes", "1"]


@pytest.mark.parametrize("command", ["render", "sample"])
def test_data_commands_name_a_folder_below_a_file(photos, tmp_path, command):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    assert_one_line_error(invoke(*data_command(command, photos, blocker / "out")), str(blocker / "out"))
    assert blocker.read_text() == "a file, not a folder\n"


@pytest.mark.parametrize("command", ["render", "sample"])
@pytest.mark.parametrize("below", [False, True], ids=["the-folder", "a-new-folder-in-it"])
def test_data_commands_name_a_folder_they_cannot_write_in(photos, read_only, command, below):
    out = read_only / "out" if below else read_only
    assert_one_line_error(invoke(*data_command(command, photos, out)), str(out))
    assert list(read_only.iterdir()) == []


# ----- the contact sheet ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def four_scenes(tmp_path_factory) -> Path:
    """The sample set cut to 4 scenes: all of them training scenes (crop 0 of the first photos)."""
    return ensure_sample(tmp_path_factory.mktemp("sample") / "s", max_scenes=4)


def test_sheet_of_a_set_without_test_scenes_shows_its_first_scene(four_scenes, tmp_path):
    result = invoke("data", "sample", four_scenes, "--max-scenes", 4, "--sheet", tmp_path / "S.png")
    assert result.exit_code == 0, result.output
    assert iio.imread(tmp_path / "S.png").shape[0] == 160 + 24


def test_sheet_naming_a_file_of_the_set_is_refused(four_scenes):
    manifest = json.loads((four_scenes / SAMPLE_MANIFEST).read_text())
    reference = four_scenes / next(f for f in manifest["files"] if "/reference/" in f)
    before = snapshot(four_scenes)
    for sheet in (reference, four_scenes / SAMPLE_MANIFEST, four_scenes / "sheet.png"):
        assert_one_line_error(invoke("data", "sample", four_scenes, "--max-scenes", 4, "--sheet", sheet), str(sheet))
    assert snapshot(four_scenes) == before


# ----- temporary files of a killed writer -----------------------------------------------------
WRITER = """
import sys, time
from fusionkit.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half an image")
    print(tmp, flush=True)
    time.sleep(120)
"""


def start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process in the middle of an atomic write of ``target``, and its temporary file."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return process, Path(process.stdout.readline().strip())


def test_a_killed_writers_temporary_file_goes_and_a_live_ones_stays(tmp_path):
    target = tmp_path / "photo.png"
    live, kept = start_writer(target)
    killed, left = start_writer(target)
    killed.kill()
    killed.wait()
    other_host = tmp_path / f".photo.png.{killed.pid}@elsewhere.abc123.tmp"
    unknown = tmp_path / ".photo.png.x1y2z3.tmp"
    for path in (other_host, unknown):
        path.write_bytes(b"not ours to judge")
    try:
        assert left.is_file() and kept.is_file() and left.name.startswith(".photo.png.")
        write_image(target, torch.rand(3, 8, 8))
        assert not left.exists()
        assert kept.is_file() and other_host.is_file() and unknown.is_file()
    finally:
        live.kill()
        live.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".photo.png.x1y2z3.tmp", kept.name, other_host.name, "photo.png"])
