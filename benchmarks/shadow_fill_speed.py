"""What the shadow fill adds to a fusion's time, against Mertens' own, on a synthetic bracket of any size.

    python benchmarks/shadow_fill_speed.py [--megapixels 24]

Two cases: the fill of Mertens' fusion of random photographs, where few pixels fall short of the floor (strips
without a shortfall are skipped), and of a fusion that is black everywhere (every strip spreads its fractions). Prints the CPU with the figures.
"""

from __future__ import annotations

import argparse

import torch

import fusionkit
from fusionkit.inference.hardware import cpu_description
from fusionkit.models.shadow_fill import ShadowFill

from mef_ssim_speed import seconds  # median of timed calls after a warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    height = round((args.megapixels * 1e6 / 1.5) ** 0.5)
    width = round(height * 1.5)
    exposures = torch.rand(1, 2, 3, height, width, generator=torch.Generator().manual_seed(0))
    exposures[:, 0] *= 0.2  # a dark and a mid exposure
    mertens = fusionkit.create("method", "mertens")
    fused, fill = mertens(exposures), ShadowFill()
    missing = ShadowFill(radius=0, sigma=0).fraction(fused, exposures[:, 1])
    short = 0.0 if missing is None else float(missing.gt(0).float().mean())
    rows = {
        "mertens": seconds(lambda: mertens(exposures), args.repeats),
        f"shadow fill of Mertens' fusion ({short:.2%} of pixels short)": seconds(lambda: fill(fused.clone(), exposures), args.repeats),
        "shadow fill, every pixel short": seconds(lambda: fill(torch.zeros_like(fused), exposures), args.repeats),
    }
    print(f"{cpu_description()}; {width}x{height} ({width * height / 1e6:.0f} MP), median of {args.repeats} after a warm-up")
    for what, taken in rows.items():
        print(f"| {what} | {taken:.2f} s |")


if __name__ == "__main__":
    main()
