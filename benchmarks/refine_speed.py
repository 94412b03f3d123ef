"""What fuse-time refinement (``refine_steps``) adds to the shipped student's fusion, at several sizes.

    python benchmarks/refine_speed.py [--megapixels 1 6 24] [--steps 0 10] [--repeats 2]

The darkest and brightest exposure of a ``brackets/train`` scene, resized to each size, fused in process as
``fusionkit fuse`` does (network at 512 px, guided upsampling, strip blend, the fill), with the student's
``refine_steps`` set to each of ``--steps``. Prints the CPU with the figures (median after a warm-up) and the
process's peak resident memory after each size (sizes run smallest first, so it is that size's peak).
"""

from __future__ import annotations

import argparse
import resource

import torch
import torch.nn.functional as F

from fusionkit.data.brackets import find_brackets
from fusionkit.data.io import read_image
from fusionkit.inference.fuse import DEFAULT_WORK_SIZE
from fusionkit.inference.hardware import cpu_description
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.runs.checkpoint import load_model
from fusionkit.runs.folders import shipped_student

from mef_ssim_speed import seconds  # median of timed calls after a warm-up
from results_real import data_root

SCENE = 0  # the first brackets/train scene: a training scene, not a test one


def pair_of(megapixels: float, root) -> torch.Tensor:
    """The scene's darkest and brightest exposure (1, 2, 3, H, W) resized to ``megapixels`` (3:2)."""
    bracket = find_brackets(root / "brackets", "train")[SCENE]
    photos = torch.stack([read_image(bracket.exposures[0]), read_image(bracket.exposures[-1])])
    height = round((megapixels * 1e6 / 1.5) ** 0.5)
    return F.interpolate(photos, size=(height, round(height * 1.5)), mode="bilinear", align_corners=False).clamp(0, 1)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[1.0, 6.0, 24.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", help="folder holding brackets/ (default: ../shared/data or $FUSIONKIT_SHARED_DATA)")
    args = parser.parse_args()
    root = data_root(args.data)
    models = {steps: load_model(shipped_student(), options={"refine_steps": steps})[0].eval() for steps in args.steps}
    print(f"CPU: {cpu_description()}; torch threads {torch.get_num_threads()}; median of {args.repeats} after a warm-up")
    print("| size | " + " | ".join(f"refine_steps {steps}" for steps in args.steps) + " | peak memory |")
    print("|---|" + "---|" * (len(args.steps) + 1))
    for megapixels in sorted(args.megapixels):
        exposures = pair_of(megapixels, root)
        taken = [seconds(lambda: fuse_with_model(models[steps], exposures, work_size=DEFAULT_WORK_SIZE), args.repeats) for steps in args.steps]
        size = f"{exposures.shape[-1]}x{exposures.shape[-2]} ({megapixels:g} MP)"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        print(f"| {size} | " + " | ".join(f"{t:.2f} s" for t in taken) + f" | {peak:.1f} GB |", flush=True)


if __name__ == "__main__":
    main()
