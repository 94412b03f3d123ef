"""Regenerate docs/tiling.md: how closely ``fuse --tile`` reproduces the untiled output, and what it costs.

    python benchmarks/tiling.py                                   # the latest run's student, on this machine
    python benchmarks/tiling.py --checkpoint runs/x/student.safetensors --device cuda --large 4096x6144

Agreement: PSNR of the tiled against the untiled output, on the sample set's test scenes (EV -1 with
+1) and on a 333x517 photograph, for whole-image pools (what ``fuse --tile`` does) and, for
comparison, per-tile statistics (every tile pooling over itself only). Cost: wall time and peak
memory of fusing one large photograph whole and in tiles, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fusionkit.evaluation.bench import machine_info
from fusionkit.runs.checkpoint import load_model
from fusionkit.data.layout import find_scenes
from fusionkit.inference.device import pick_device
from fusionkit.inference.fuse import read_exposures
from fusionkit.evaluation.metrics import psnr
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.runs.folders import latest_run, shipped_student
from fusionkit.wholeimage import pooling_context, pooling_groups

SETTINGS = ((128, 32), (192, 64), (256, 64))


class PerTileStatistics(nn.Module):
    """The student with its whole-image pools confined to each tile: what tiling gives without gathering."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_inputs, self.multiple_of = model.num_inputs, model.multiple_of

    def forward(self, x):
        with pooling_context(None):
            return self.model(x)


def photo_exposures(height: int, width: int) -> torch.Tensor:
    """Two exposures (gains 0.4 and 1.8) of scikit-image's astronaut photograph resized to height x width."""
    from skimage import data as skdata
    from skimage.transform import resize

    photo = torch.from_numpy(resize(skdata.astronaut(), (height, width), anti_aliasing=True).astype(np.float32))
    photo = photo.permute(2, 0, 1)
    return torch.stack([(photo * 0.4).clamp(0, 1), (photo * 1.8).clamp(0, 1)])[None]


def agreement(model: nn.Module, inputs: dict[str, torch.Tensor], color: str, device: torch.device) -> list[dict]:
    rows = []
    per_tile = PerTileStatistics(model)
    images = [exposures.to(device) for exposures in inputs.values()]
    references = [fuse_with_model(model, exposures, color) for exposures in images]
    for tile, overlap in SETTINGS:
        for label, net in (("whole-image pools", model), ("per-tile statistics", per_tile)):
            scores, seconds = [], 0.0
            for exposures, whole in zip(images, references):
                start = time.perf_counter()
                tiled = fuse_with_model(net, exposures, color, tile=tile, overlap=overlap)
                seconds += time.perf_counter() - start
                scores.append(float(psnr(tiled.clamp(0, 1), whole.clamp(0, 1))))
            rows.append({"tile": tile, "overlap": overlap, "statistics": label, "psnr_mean": float(np.mean(scores)),
                         "psnr_min": float(np.min(scores)), "seconds": seconds, "images": len(scores)})
    return rows


def cost_in_fresh_process(checkpoint: Path, size: tuple[int, int], tile: int | None, device: str) -> dict:
    """Fuse one large photograph in a child process; its wall time and peak memory."""
    command = [sys.executable, __file__, "--measure", str(checkpoint), "--large", f"{size[0]}x{size[1]}", "--device", device]
    if tile:
        command += ["--tile", str(tile)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def measure(checkpoint: Path, size: tuple[int, int], tile: int | None, device: torch.device) -> dict:
    model, recipe = load_model(checkpoint, map_location=device)
    exposures = photo_exposures(*size).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        fuse_with_model(model.eval(), exposures, recipe.get("color", "rgb"), tile=tile, overlap=64)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": time.perf_counter() - start, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="student checkpoint [default: the latest run's]")
    parser.add_argument("--data", type=Path, default=None, help="dataset root [default: the embedded sample set]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--large", default="2048x3072", help="HxW of the photograph for time and memory")
    parser.add_argument("--large-tiles", default="512,1024", help="tile sizes for time and memory")
    parser.add_argument("--out", type=Path, default=Path("docs/tiling.md"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    large = tuple(int(v) for v in args.large.split("x"))
    device = pick_device(args.device)
    if args.measure:
        print(json.dumps(measure(args.measure, large, args.tile, device)))
        return

    run = latest_run()
    checkpoint = args.checkpoint or (run / "student.safetensors" if run else shipped_student())
    model, recipe = load_model(checkpoint, map_location=device)
    model.eval()
    if args.data is None:
        from fusionkit.synthetic import ensure_sample

        args.data = ensure_sample()
    scenes = find_scenes(args.data, "test")
    inputs = {scene.name: read_exposures([scene.inputs["N1"], scene.inputs["P1"]]) for scene in scenes}
    photo = {"astronaut 333x517": photo_exposures(333, 517)}
    with torch.inference_mode():
        on_scenes = agreement(model, inputs, recipe.get("color", "rgb"), device)
        on_photo = agreement(model, photo, recipe.get("color", "rgb"), device)
    tiles = [None] + [int(t) for t in args.large_tiles.split(",")]
    costs = [(tile, cost_in_fresh_process(checkpoint, large, tile, args.device)) for tile in tiles]

    blocks = len(set(pooling_groups(model).values()))
    info = machine_info(device)
    machine = info.get("gpu") or f"{info['cpu']}, {info['threads']} threads"
    first = next(iter(inputs.values()))
    lines = [
        "# Tiled fuse: agreement with the untiled output, and its cost",
        "",
        f"Generated by `python {' '.join(sys.argv)}` on {machine} (torch {info['torch']}), "
        f"student `{checkpoint}` ({recipe.get('name')}, width {recipe.get('options', {}).get('width')}).",
        "",
        "`fuse --tile N --overlap M` runs the student on overlapping tiles and feathers them together. Layers that",
        "pool over the whole image (SE, strip pooling) use `fusionkit.wholeimage.WholeImagePool`: before the output",
        "pass, one pass per pooling block gathers the whole image's statistics over the tiles, so every tile sees",
        "the same statistics as the untiled network. \"Per-tile statistics\" is the same tiling without that",
        "gathering, for comparison. The rest of the gap is the usual border effect of convolutions near tile edges.",
        f"This student has {blocks} pooling blocks, so a tiled fuse makes {blocks + 1} passes over the tiles; the",
        "gathering passes stop at the block they gather.",
        "",
        f"## Agreement on the sample set's test scenes ({len(inputs)} scenes, EV -1 with +1, {first.shape[-1]}x{first.shape[-2]})",
        "",
        *_agreement_table(on_scenes),
        "",
        "## Agreement on a 333x517 photograph (astronaut, gains 0.4 and 1.8)",
        "",
        *_agreement_table(on_photo),
        "",
        f"## Cost on a {large[1]}x{large[0]} photograph (overlap 64, each in a fresh process)",
        "",
        "| run | seconds | peak memory (MiB) |",
        "|---|---|---|",
        *[f"| {'untiled' if tile is None else f'tile {tile}'} | {c['seconds']:.1f} | {c['peak_mib']:.0f} |" for tile, c in costs],
        "",
        "Peak memory is the process's resident set on the CPU (model, input, output and activations) and the",
        "CUDA allocator's peak on a GPU.",
        "",
        "The same on a GPU: `python benchmarks/tiling.py --device cuda --large 4096x6144 --large-tiles 1024,2048`.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps({"scenes": on_scenes, "photo": on_photo, "cost": [
        {"tile": tile, **c} for tile, c in costs], "large": large, "checkpoint": str(checkpoint)}, indent=2))
    print("\n".join(lines))


def _agreement_table(rows: list[dict]) -> list[str]:
    return [
        "| tile | overlap | statistics | PSNR vs untiled, mean (dB) | min (dB) | seconds (all images) |",
        "|---|---|---|---|---|---|",
        *[f"| {r['tile']} | {r['overlap']} | {r['statistics']} | {r['psnr_mean']:.2f} | {r['psnr_min']:.2f} | {r['seconds']:.1f} |" for r in rows],
    ]


if __name__ == "__main__":
    main()
