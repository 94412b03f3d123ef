"""Inference speed of one model: throughput, latency percentiles, peak memory, parameters, FLOPs."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode


def resident_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def gflops(fn: Callable[[Tensor], Tensor], example: Tensor) -> float:
    """Floating-point operations of one call (multiply-add = 2), in GFLOP, by torch's FLOP counter."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn(example)
    return counter.get_total_flops() / 1e9


def measure(
    fn: Callable[[Tensor], Tensor],
    example: Tensor,
    *,
    warmup: int = 3,
    iters: int = 10,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Time ``fn(example)`` after warm-up; ``example`` is one batch of exposure stacks (N, K, 3, H, W) on the target
    device (``pairs_per_s`` counts stacks, the report's name)."""
    device = example.device
    cuda = device.type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    latencies, peak_rss = [], resident_mb()
    with torch.inference_mode(), autocast:
        for i in range(warmup + iters):
            synchronize()
            start = time.perf_counter()
            fn(example)
            synchronize()
            if i >= warmup:
                latencies.append(time.perf_counter() - start)
                peak_rss = max(peak_rss, resident_mb())
    latencies.sort()
    batch = example.shape[0]
    pixels = example.shape[-1] * example.shape[-2]
    mean = sum(latencies) / len(latencies)
    pick = lambda q: latencies[min(len(latencies) - 1, int(round(q * (len(latencies) - 1))))]  # noqa: E731
    return {
        "pairs_per_s": batch / mean,
        "megapixels_per_s": batch * pixels / mean / 1e6,
        "latency_p50_ms": pick(0.5) * 1e3,
        "latency_p95_ms": pick(0.95) * 1e3,
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss,
        "peak_memory_kind": "cuda_allocator" if cuda else "resident",
    }

