"""Loader throughput (exposure pairs per second) on this machine, for a few worker counts.

    python benchmarks/bench_loader.py [--data DIR] [--workers 0 1 2] [--epochs 3]

Uses the sample set unless --data names a dataset in Afifi et al.'s layout. Prints the machine
and a Markdown table; the figures in docs/data.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import torch

from fusionkit.data import build_loader
from fusionkit.synthetic import ensure_sample

#: (label, split, loader options): the training stream and a full-image evaluation pass.
CASES = (
    ("train: random pairs, crop 128, flip, batch 8", "training", {"pairs": "random", "crop": 128, "flip": True, "batch_size": 8}),
    ("test: all 10 pairs, full 288x384, batch 1", "testing", {"pairs": "all", "batch_size": 1}),
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pairs_per_second(root, split: str, options: dict, workers: int, epochs: int) -> float:
    """Steady-state rate: the loader's first batch (worker start-up) is not counted."""
    loader = build_loader(root, split, workers=workers, **options)
    pairs, start = 0, None
    for _ in range(epochs):
        for batch in loader:
            if start is None:
                start = time.perf_counter()
                continue
            pairs += batch["inputs"].shape[0]
    return pairs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset root (default: the sample set)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    root = args.data or ensure_sample()

    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}")
    print(f"data: {root}\n")
    print("| case | " + " | ".join(f"workers={w}" for w in args.workers) + " |")
    print("|---|" + "---:|" * len(args.workers))
    for label, split, options in CASES:
        rates = [pairs_per_second(root, split, options, w, args.epochs) for w in args.workers]
        print(f"| {label} | " + " | ".join(f"{r:.0f} pairs/s" for r in rates) + " |")


if __name__ == "__main__":
    main()
