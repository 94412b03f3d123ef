"""GPU figures for docs/speed.md (run through ``benchmarks/fuse_speed.py --gpu`` on a CUDA machine).

4K inference latency of each student preset's fast path (and the full-resolution path for
comparison), of the tiled full-resolution path one tile or eight tiles per batch, and of mertens; training throughput and model FLOP utilisation of the student at
256x256 crops, in float32 and with bf16 autocast + channels_last, with and without torch.compile.
"""

from __future__ import annotations

import statistics
import time

import torch

import fusionkit
from fusionkit.inference.hardware import Precision
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.training.config import TrainConfig

#: Dense bf16 tensor-core peak of the cards this project is lent, FLOP/s (vendor data sheets).
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
PRESETS = ("se_strip", "dense_fusion", "kd_baseline")


def gpu_seconds(fn, warmup: int = 3, runs: int = 10) -> float:
    """Median wall time of ``fn`` on the GPU, synchronised, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def four_k_exposures(device: torch.device) -> torch.Tensor:
    """A smooth synthetic 3840x2160 bracket (speed does not depend on content)."""
    generator = torch.Generator().manual_seed(0)
    scene = torch.nn.functional.interpolate(torch.rand(1, 3, 54, 96, generator=generator), size=(2160, 3840), mode="bicubic")
    scene = scene.clamp(0, 1).to(device)
    return torch.stack([(scene * 0.25).clamp(0, 1), (scene * 2.5).clamp(0, 1)], dim=1)


def inference_figures(device: torch.device, width: int) -> dict[str, str]:
    exposures = four_k_exposures(device)
    bf16 = Precision(torch.bfloat16, True, "bf16 channels_last")
    figures = {}
    with torch.inference_mode():
        mertens = fusionkit.create("method", "mertens").to(device)
        figures["mertens, 3840x2160 pair"] = f"{gpu_seconds(lambda: mertens(exposures)) * 1e3:.1f} ms"
        for preset in PRESETS:
            model = fusionkit.create("student", preset, width=width).to(device).eval()
            bf16.apply(model)
            fast = gpu_seconds(lambda: fuse_with_model(model, exposures, work_size=512, precision=bf16))
            full = gpu_seconds(lambda: fuse_with_model(model, exposures, work_size=None, precision=bf16), runs=3)
            figures[f"{preset} (width {width}), 3840x2160 pair, fast path (work size 512)"] = f"{fast * 1e3:.1f} ms"
            figures[f"{preset} (width {width}), 3840x2160 pair, full-resolution network"] = f"{full * 1e3:.1f} ms"
        model = fusionkit.create("student", "se_strip", width=width).to(device).eval()
        bf16.apply(model)
        for batch in (1, 8):
            tiled = gpu_seconds(lambda: fuse_with_model(model, exposures, tile=512, overlap=64, precision=bf16, tile_batch=batch), warmup=1, runs=3)
            figures[f"se_strip (width {width}), 3840x2160 pair, full resolution in 512-px tiles, {batch} per batch"] = f"{tiled * 1e3:.0f} ms"
    return figures


def training_figures(device: torch.device, width: int, batch: int = 32, crop: int = 256) -> dict[str, str]:
    """Student training steps (forward, weight blend, L1 + MEF-SSIM loss, backward, AdamW) per second."""
    from torch.utils.flop_counter import FlopCounterMode

    peak = next((p for name, p in PEAK_BF16.items() if name in torch.cuda.get_device_name(device)), None)
    l1, mef = fusionkit.create("loss", "l1"), fusionkit.create("loss", "mef_ssim")
    generator = torch.Generator().manual_seed(0)
    exposures = torch.rand(batch, 2, 3, crop, crop, generator=generator).to(device)
    target = exposures.mean(dim=1)
    figures = {}
    for label, dtype, channels_last, compiled in (
        ("float32", None, False, False), ("bf16 + channels_last", torch.bfloat16, True, False),
        ("bf16 + channels_last + compile", torch.bfloat16, True, True),
    ):
        model = fusionkit.create("student", "se_strip", width=width).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        forward = torch.compile(model) if compiled else model
        net_input = exposures.flatten(1, 2) / exposures.flatten(1, 2).std(dim=(-2, -1), keepdim=True)
        if channels_last:
            net_input = net_input.contiguous(memory_format=torch.channels_last)

        def step():
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = forward(net_input)
            fused = model.fuse(exposures, logits.float())
            loss = l1(fused, exposures, target) + mef(fused, exposures, None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = gpu_seconds(step, warmup=5 if compiled else 3, runs=10)
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        utilisation = f", {flops / seconds / peak * 100:.1f} % of the bf16 peak" if peak else ""
        figures[f"se_strip (width {width}) training, batch {batch} at {crop}x{crop}, {label}"] = (
            f"{batch / seconds:.0f} crops/s ({seconds * 1e3:.1f} ms/step; {flops / seconds / 1e12:.1f} TFLOP/s counted{utilisation})"
        )
    return figures


def gpu_figures(args) -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    device = torch.device("cuda")
    width = TrainConfig().width
    figures = {**inference_figures(device, width), **training_figures(device, width)}
    for name, value in figures.items():
        print(f"{name}: {value}", flush=True)
    return {
        "device": f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}",
        "note": ("Untrained students of the main job's width (speed does not depend on the weights). Training steps "
                 "use the weight blend with L1 + MEF-SSIM losses, without the teacher's distillation term; FLOPs are "
                 "counted by torch.utils.flop_counter (convolutions and matrix products) over one step."),
        "figures": figures,
    }
