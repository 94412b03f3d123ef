"""bench reports every figure; fuse handles odd sizes, tiles, bit depths and bad input with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fusionkit.cli.main import cli
from fusionkit.training.config import make_config
from fusionkit.data.io import read_image, write_image
from fusionkit.evaluation.metrics import psnr
from fusionkit.training.engine import train
from tests.fake_exposure_data import make_fake_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny dataset and a tiny trained run (both stages) on it."""
    root = tmp_path_factory.mktemp("bench")
    data = make_fake_dataset(root / "data", train=4, val=1, test=2, size=48)  # MEF-SSIM needs 44 px
    config = make_config({"data": str(data), "run_dir": str(root / "run"), "width": 8, "crop": 32, "batch_size": 2,
                          "teacher_steps": 6, "student_steps": 6, "losses": {"perceptual": 0}, "device": "cpu",
                          "student_options": {"refine_steps": 0}})  # the refinement has its own tests (test_refine.py)
    return data, train(config)


@pytest.fixture(scope="module")
def photo_pair(tmp_path_factory) -> tuple[Path, Path]:
    """Two exposures of a real photograph at an odd size (333 x 517)."""
    from skimage import data as skdata
    from skimage.transform import resize

    root = tmp_path_factory.mktemp("photos")
    photo = resize(skdata.astronaut(), (333, 517), anti_aliasing=True).astype(np.float32)
    paths = []
    for name, gain in (("under.png", 0.4), ("over.png", 1.8)):
        path = root / name
        write_image(path, torch.from_numpy(np.clip(photo * gain, 0, 1)).permute(2, 0, 1))
        paths.append(path)
    return tuple(paths)


def test_bench_json_holds_every_figure(trained, tmp_path):
    data, run = trained
    out = tmp_path / "bench.json"
    args = ["bench", "--data", str(data), "--checkpoint", str(run), "--size", "32", "--iters", "2", "--warmup", "1",
            "--json", str(out), "--csv", str(tmp_path / "b.csv"), "--markdown", str(tmp_path / "b.md")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    labels = [m["label"] for m in report["models"]]
    assert labels[0].startswith("se_strip") and "teacher" in labels[1] and sorted(labels[2:]) == ["best_input", "mean", "mertens"]
    assert [m["label"] for m in report["models"] if m["oracle"]] == ["best_input"]
    for model in report["models"]:
        assert set(model["quality"]) == {"low", "high", "all"}
        assert model["quality"]["low"]["pairs"] == 2 and model["quality"]["high"]["pairs"] == 6 and model["quality"]["all"]["pairs"] == 20
        for split in model["quality"].values():
            assert 0 < split["psnr"] < 100 and 0 < split["ssim"] <= 1
        speed = model["speed"]
        for key in ("pairs_per_s", "megapixels_per_s", "latency_p50_ms", "latency_p95_ms", "peak_memory_mb", "parameters"):
            assert speed[key] >= 0, key
        assert speed["gflops_per_pair"] is None if model["role"] == "method" else speed["gflops_per_pair"] > 0
        assert speed["latency_p95_ms"] >= speed["latency_p50_ms"]
    assert report["models"][0]["speed"]["parameters"] > 0 and report["models"][0]["speed"]["gflops_per_pair"] > 0
    assert {"cpu", "threads", "torch", "device"} <= set(report["machine"])
    assert "PSNR all" in result.output and (tmp_path / "bench_grid.png").exists()
    assert (tmp_path / "b.csv").read_text().startswith("model,role,PSNR low")
    assert "| model |" in (tmp_path / "b.md").read_text()


def test_bench_honours_amp_channels_last_and_batch(trained, tmp_path):
    data, run = trained
    reports = {}
    for name, extra in (("fp32", ["--precision", "fp32"]), ("bf16", ["--precision", "bf16", "--channels-last", "--batch", "2"])):
        out = tmp_path / f"{name}.json"
        args = ["bench", "--data", str(data), "--checkpoint", str(run), "--methods", "", "--size", "32", "--iters", "2",
                "--warmup", "1", "--json", str(out), *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(out.read_text())
    settings = reports["bf16"]["settings"]
    assert settings["precision"] == "bf16" and settings["channels_last"] is True and settings["batch"] == 2
    assert all(model["speed"]["batch"] == 2 for model in reports["bf16"]["models"])
    fp32, bf16 = (reports[name]["models"][0]["quality"]["all"]["psnr"] for name in ("fp32", "bf16"))
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.5  # bf16 autocast really ran, and changed little


def test_fuse_odd_size_round_trips(trained, photo_pair, tmp_path):
    _, run = trained
    for suffix, bits in ((".png", "8"), (".tif", "16"), (".jpg", "8")):
        out = tmp_path / f"fused{suffix}"
        result = CliRunner().invoke(cli, ["fuse", *map(str, photo_pair), "-o", str(out), "--checkpoint", str(run / "student.safetensors"), "--bits", bits])
        assert result.exit_code == 0, result.output
        assert read_image(out).shape == (3, 333, 517)


def test_fuse_with_method_reads_16_bit(photo_pair, tmp_path):
    sixteen = tmp_path / "under16.tif"
    write_image(sixteen, read_image(photo_pair[0]), bits=16)
    out = tmp_path / "mertens.png"
    result = CliRunner().invoke(cli, ["fuse", str(sixteen), str(photo_pair[1]), "-o", str(out), "--method", "mertens"])
    assert result.exit_code == 0, result.output
    assert read_image(out).shape == (3, 333, 517)


def test_tiled_and_untiled_fuse_agree(trained, photo_pair, tmp_path):
    """``fuse --tile`` with the trained se_strip (whole-image SE and strip pooling) reproduces the untiled file.

    tests/test_tiling.py shows the same on a student whose attention depends strongly on the whole image.
    """
    _, run = trained
    outputs = {}
    for name, extra in (("whole", []), ("tiled", ["--tile", "192", "--overlap", "64"])):
        outputs[name] = tmp_path / f"{name}.png"
        args = ["fuse", *map(str, photo_pair), "-o", str(outputs[name]), "--checkpoint", str(run / "student.safetensors"), *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    whole, tiled = read_image(outputs["whole"]), read_image(outputs["tiled"])
    assert tiled.shape == whole.shape == (3, 333, 517)
    assert float(psnr(tiled[None], whole[None])) >= 40


def test_bad_tile_is_one_line_and_non_zero(trained, photo_pair, tmp_path):
    _, run = trained
    args = ["fuse", *map(str, photo_pair), "-o", str(tmp_path / "x.png"), "--checkpoint", str(run), "--tile", "130"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and not (tmp_path / "x.png").exists()
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--tile must be a multiple of 4" in lines[0], result.output


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda p, t: ["fuse", str(p[0]), str(t), "-o", "x.png", "--method", "mean"], "differ in size"),
        (lambda p, t: ["fuse", *map(str, p), "-o", "x.png", "--checkpoint", "nope/student.safetensors"], "checkpoint not found: nope/student.safetensors"),
        (lambda p, t: ["fuse", *map(str, p), "-o", "x.png", "--method", "mertnes"], "did you mean 'mertens'"),
        (lambda p, t: ["fuse", str(p[0]), "missing.png", "-o", "x.png", "--method", "mean"], "missing.png"),
        (lambda p, t: ["fuse", *map(str, p), "-o", "x.png", "--method", "best_input"], "needs the ground truth"),
        (lambda p, t: ["bench", "--checkpoint", "nope.safetensors", "--methods", ""], "nope"),
        (lambda p, t: ["fuse", *map(str, p), "-o", "x.png", "--method", "mean", "--tile", "128"], "--tile applies to a student"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(photo_pair, tmp_path, make_args, message):
    small = tmp_path / "small.png"
    write_image(small, torch.rand(3, 20, 30))
    with CliRunner().isolated_filesystem(temp_dir=tmp_path):
        result = CliRunner().invoke(cli, make_args(photo_pair, small))
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_bench_compares_a_third_party_method_without_flags(trained, tmp_path, restore_registry):
    """Every registered method is benched by default, a plugin's too; an oracle is shown but not ranked."""
    import torch

    import fusionkit
    from fusionkit.plugins import build_registry

    class Brightest(torch.nn.Module):
        """A third party's method: the brightest exposure."""

        def forward(self, exposures, reference=None):
            return exposures[:, -1]

    class ThirdParty:
        @fusionkit.hookimpl
        def register_components(self, register):
            register("method", "brightest_input", Brightest)

    from fusionkit.plugins import set_registry

    set_registry(build_registry([ThirdParty()]))
    data, run = trained
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--data", str(data), "--checkpoint", str(run), "--no-speed", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert "brightest_input" in [m["label"] for m in report["models"]]
    assert "best_input" in result.output and "best_input" in [m["label"] for m in report["models"] if m["oracle"]]
    assert not any(line.startswith("best_input") and "*" in line for line in result.output.splitlines())
