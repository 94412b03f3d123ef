"""Regenerate docs/results.md: train the student presets on the sample set, then bench them beside the
training-free methods, with the paper's own numbers quoted for reference.

    python benchmarks/results.py                                    # this machine's defaults (CPU: se_strip only)
    python benchmarks/results.py --students se_strip,dense_fusion,kd_baseline --width 64 \
        --teacher-steps 3000 --student-steps 6000 --crop 128 --batch-size 16 --out docs/results_gpu.md
    python benchmarks/results.py --data /path/to/exposure_errors ... # the real dataset
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fusionkit.evaluation.bench import run_bench
from fusionkit.training.config import make_config
from fusionkit.evaluation.report import format_markdown
from fusionkit.training.engine import train

PAPER = """| model | split | PSNR (AE) | PSNR | SSIM (AE) | SSIM |
|---|---|---|---|---|---|
| Afifi et al. (single image) | low / high / all | - | 20.542 / 19.980 / 20.205 | - | 77.0 / 76.8 / 76.9 |
| KD baseline | low / high / all | 25.470 / 27.122 / 26.452 | 20.899 / 21.713 / 21.494 | 90.1 / 90.8 / 90.9 | 85.3 / 86.5 / 86.2 |
| DenseFusion | low / high / all | 25.243 / 26.747 / 26.137 | 21.133 / 22.244 / 21.947 | 89.4 / 89.3 / 89.3 | 86.8 / 87.9 / 87.8 |
| Final (se_strip) | low / high / all | 24.949 / 26.353 / 25.784 | 21.423 / 22.082 / 22.057 | 87.3 / 87.2 / 87.2 | 87.0 / 87.9 / 87.9 |
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="se_strip")
    parser.add_argument("--data", default=None, help="dataset root; default: the embedded sample set")
    parser.add_argument("--runs", default="runs/results", help="where the runs are written")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--teacher-steps", type=int, default=None)
    parser.add_argument("--student-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--reuse", action="store_true", help="bench existing runs in --runs instead of training")
    parser.add_argument("--run", default=None, help="bench this one finished run folder (its student and teacher), e.g. the main job's")
    parser.add_argument("--max-scenes", type=int, default=None, help="evaluate only the first N test scenes (smoke tests)")
    args = parser.parse_args()

    options = {k: v for k, v in {
        "width": args.width, "teacher_steps": args.teacher_steps, "student_steps": args.student_steps,
        "batch_size": args.batch_size, "crop": args.crop, "data": args.data, "workers": args.workers,
    }.items() if v is not None}
    options.update(device=args.device, precision=args.precision, compile=args.compile)
    runs = Path(args.runs)
    students = [s.strip() for s in args.students.split(",") if s.strip()]
    timings = {}
    if args.run:
        runs, students = Path(args.run).parent, [Path(args.run).name]
        run = Path(args.run)  # its files' times bracket the training: config first, student recipe last
        timings["teacher + student (from the run's file times)"] = (run / "student.json").stat().st_mtime - (run / "config.json").stat().st_mtime
    elif not args.reuse:
        start = time.perf_counter()
        train(make_config(options, {"stage": "teacher", "run_dir": str(runs / "teacher")}))
        timings["teacher"] = time.perf_counter() - start
        for name in students:
            start = time.perf_counter()
            train(make_config(options, {"stage": "student", "student": name, "run_dir": str(runs / name),
                                        "teacher_checkpoint": str(runs / "teacher" / "teacher.safetensors")}))
            timings[name] = time.perf_counter() - start
    teacher = runs / students[0] / "teacher.safetensors" if args.run else runs / "teacher" / "teacher.safetensors"
    checkpoints = [runs / name / "student.safetensors" for name in students] + [teacher]
    if args.data is None:
        from fusionkit.synthetic import ensure_sample

        data_root = ensure_sample()
    else:
        data_root = Path(args.data)
    out = Path(args.out)
    report = run_bench(
        data_root=data_root, checkpoints=checkpoints, methods=["mertens", "mean", "best_input"], device=args.device,
        precision=args.precision, compile_model=args.compile, size=args.size, iters=args.iters,
        grid_path=out.with_name(out.stem + "_grid.png"), max_scenes=args.max_scenes,
    )
    grid_png = out.with_name(out.stem + "_grid.png")
    grid_jpg = out.parent / "images" / f"{out.stem}_grid.jpg"
    if grid_png.exists():  # keep docs light: a downscaled JPEG replaces the full-size PNG
        from PIL import Image

        grid_jpg.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(grid_png)
        image.thumbnail((1600, 1600))
        image.convert("RGB").save(grid_jpg, quality=85)
        grid_png.unlink()
    split = "all" if any("all" in m["quality"] for m in report["models"]) else "extremes"  # Afifi's pairs or brackets
    by_label = {m["label"]: m["quality"].get(split, {}).get("psnr") for m in report["models"]}
    margins = []
    for model in report["models"]:
        if model["role"] == "student":
            ours = model["quality"][split]["psnr"]
            margins.append(f"- `{model['label']}`: PSNR {split} {ours:.2f} dB; "
                           + ", ".join(f"{ours - by_label[m]:+.2f} dB vs `{m}`" for m in ("mertens", "mean") if by_label.get(m) is not None))
    config = json.loads((runs / students[0] / "config.json").read_text()) if (runs / students[0] / "config.json").exists() else {}
    lines = [
        f"# Results ({report['machine'].get('gpu', report['machine']['cpu'])})",
        "",
        f"Generated by `python {' '.join(sys.argv)}`.",
        "",
        "## Training",
        "",
        "Settings: " + ", ".join(f"{k}={config.get(k)}" for k in ("width", "crop", "batch_size", "teacher_steps", "student_steps", "lr", "precision", "device")),
        "",
        "| stage | wall time (s) |",
        "|---|---|",
        *[f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items()],
        "",
        "## Quality and speed on the sample set's test split",
        "",
        format_markdown(report),
        *margins,
        "",
        f"![inputs, each model, ground truth](images/{out.stem}_grid.jpg)",
        "",
        "Columns of the picture: the two inputs (the darkest and the brightest exposure), each model above in order, ground truth.",
        "",
        "## Elsewhere",
        "",
        "- A GPU: [results_gpu.md](results_gpu.md) (the H200 lent to this project: CUDA test suite, speed, sweep).",
        "- Tiled fuse: [tiling.md](tiling.md) (agreement with the untiled output, time and memory; `benchmarks/tiling.py`).",
        "- The same on a GPU: `python benchmarks/results.py --students se_strip,dense_fusion,kd_baseline --width 64 "
        "--teacher-steps 20000 --student-steps 60000 --crop 256 --batch-size 16 --workers 8 --out docs/results_gpu_ablation.md`",
        "- The real dataset: add `--data /path/to/exposure_errors` (Afifi et al.'s layout, see [data.md](data.md)).",
        "",
        "## The paper's reported numbers (MIT-Adobe FiveK exposure-errors test set, SSIM x100)",
        "",
        "For reference only: the sample set is small and rendered here, so its figures are not comparable.",
        "",
        PAPER,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"report": report, "train_seconds": timings}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    torch.backends.cudnn.benchmark = True
    main()
