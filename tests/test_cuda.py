"""GPU paths: bf16/fp16 autocast, channels_last, torch.compile, tiled fuse and bench on CUDA (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import fusionkit
from fusionkit.evaluation.bench import run_bench
from fusionkit.runs.checkpoint import load_model, read_recipe
from fusionkit.training.config import make_config
from fusionkit.evaluation.metrics import psnr
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.training.engine import train
from tests.fake_exposure_data import make_fake_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_fake_dataset(tmp_path_factory.mktemp("cuda") / "data", train=4, val=1, test=2, size=40)


@pytest.mark.parametrize("amp, compile_model", [("bf16", False), ("fp16", False), ("bf16", True)])
def test_training_on_cuda(dataset, tmp_path, amp, compile_model):
    config = make_config({"data": str(dataset), "run_dir": str(tmp_path / "run"), "width": 8, "crop": 32, "batch_size": 2,
                          "teacher_steps": 20, "student_steps": 20, "losses": {"perceptual": 0}, "device": "cuda",
                          "precision": amp, "compile": compile_model, "log_every": 1})
    run = train(config)
    recipe = read_recipe(run / "student")
    assert recipe["complete"] and recipe["config"]["precision"] == amp
    model, _ = load_model(run / "student", map_location="cuda")
    assert next(model.parameters()).is_cuda
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cuda_matches_cpu_and_tiles(dataset):
    torch.manual_seed(0)
    model = fusionkit.create("student", "se_strip", width=8).eval()
    exposures = torch.rand(1, 2, 3, 133, 207)
    on_cpu = fuse_with_model(model, exposures)
    on_gpu = fuse_with_model(model.cuda(), exposures.cuda())
    assert float(psnr(on_gpu.cpu(), on_cpu)) > 60
    tiled_on_cpu = fuse_with_model(model.cpu().to(memory_format=torch.channels_last), exposures, tile=96, overlap=32)
    channels_last = fuse_with_model(model.cuda(), exposures.cuda(), tile=96, overlap=32)
    assert channels_last.shape == (1, 3, 133, 207) and channels_last.is_cuda
    assert float(psnr(channels_last.cpu(), tiled_on_cpu)) > 60  # whole-image pools gathered on the GPU as on the CPU
    assert float(psnr(channels_last.cpu(), on_cpu)) > 40  # 44.4 dB on the CPU
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = fuse_with_model(model, exposures.cuda())
    assert float(psnr(half.float().cpu(), on_cpu)) > 30


def test_bench_on_cuda_reports_allocator_memory(dataset):
    report = run_bench(data_root=dataset, checkpoints=[], methods=["mertens", "mean"], device="cuda", size=64, iters=3, warmup=1,
                       metrics=["psnr", "ssim"])  # the 40-px test scenes are too small for MEF-SSIM's three scales
    assert report["machine"]["gpu"]
    for model in report["models"]:
        assert model["speed"]["peak_memory_kind"] == "cuda_allocator" and model["speed"]["pairs_per_s"] > 0
