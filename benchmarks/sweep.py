"""Grid over training options on the sample set: train each configuration, bench its student on the
test split, and tabulate PSNR/SSIM and training time. Used to choose the CPU demo's defaults.

    python benchmarks/sweep.py --grid "crop=96,160 lambda_distill=1,0.1" --set teacher_steps=600 \
        --parallel 4 --out docs/sweep.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def parse_pairs(text: str) -> dict[str, list[str]]:
    grid = {}
    for item in text.split():
        key, _, values = item.partition("=")
        grid[key] = values.split(",")
    return grid


def run_one(name: str, options: dict[str, str], runs: Path) -> dict:
    run_dir = runs / name
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    start = time.perf_counter()
    train = subprocess.run([sys.executable, "-m", "fusionkit", "train", "--run-dir", str(run_dir), *flags], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if train.returncode != 0:
        return {"name": name, "options": options, "error": train.stderr.strip().splitlines()[-1:]}
    report_path = run_dir / "bench.json"
    bench = subprocess.run([sys.executable, "-m", "fusionkit", "bench", "--checkpoint", str(run_dir / "student.safetensors"),
                            "--methods", "", "--no-speed", "--json", str(report_path)], capture_output=True, text=True)
    if bench.returncode != 0:
        return {"name": name, "options": options, "error": bench.stderr.strip().splitlines()[-1:]}
    quality = json.loads(report_path.read_text())["models"][0]["quality"]
    return {"name": name, "options": options, "train_seconds": seconds, "quality": quality}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", required=True, help='space-separated KEY=V1,V2 items, e.g. "crop=96,160 lr=1e-3,2e-3"')
    parser.add_argument("--set", default="", help="space-separated KEY=VALUE options shared by every run")
    parser.add_argument("--runs", default="runs/sweep")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", default=None, help="Markdown table (and a .json beside it)")
    args = parser.parse_args()
    grid = parse_pairs(args.grid)
    shared = {k: v[0] for k, v in parse_pairs(args.set).items()}
    configs = []
    for values in itertools.product(*grid.values()):
        options = {**shared, **dict(zip(grid, values))}
        configs.append(("-".join(f"{k}{v}" for k, v in zip(grid, values)), options))
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda c: run_one(c[0], c[1], Path(args.runs)), configs))
    lines = ["| " + " | ".join([*grid, "PSNR low", "PSNR high", "PSNR all", "SSIM all", "train s"]) + " |", "|" + "---|" * (len(grid) + 5)]
    for result in results:
        cells = [result["options"][k] for k in grid]
        if "error" in result:
            cells += ["error: " + " ".join(result["error"])] + [""] * 4
        else:
            q = result["quality"]
            cells += [f"{q['low']['psnr']:.2f}", f"{q['high']['psnr']:.2f}", f"{q['all']['psnr']:.2f}", f"{q['all']['ssim']:.4f}", f"{result['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"Shared options: {shared}\n\n{table}\n")
        out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
