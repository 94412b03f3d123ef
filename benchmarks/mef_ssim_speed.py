"""CPU time of the benchmark MEF-SSIM (``mef_ssim_rgb``: MATLAB gray conversion, float64, 3 scales) on
one 1-megapixel fused image against K = 2 and K = 3 exposures; the target is under 1 s per image.

    python benchmarks/mef_ssim_speed.py [--size 1000] [--runs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fusionkit.evaluation.mef_ssim import mef_ssim_rgb
from fusionkit.inference.hardware import cpu_description


def seconds(fn, runs: int) -> float:
    """Median wall time of ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1000, help="side of the square images (1000: 1 MP)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"CPU: {cpu_description()}")
    generator = torch.Generator().manual_seed(0)
    for k in (2, 3):
        fused = torch.rand(1, 3, args.size, args.size, generator=generator)
        exposures = torch.rand(1, k, 3, args.size, args.size, generator=generator)
        median = seconds(lambda: mef_ssim_rgb(fused, exposures), args.runs)
        verdict = "ok" if median < 1.0 else "SLOW"
        print(f"mef_ssim_rgb {args.size}x{args.size}, K={k}: {median:.3f} s (median of {args.runs}) [{verdict}: < 1 s]")


if __name__ == "__main__":
    main()
