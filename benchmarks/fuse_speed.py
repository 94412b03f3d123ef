"""Wall time and peak memory of ``fusionkit fuse`` at 0.25, 6 and 24 megapixels, beside OpenCV's
MergeMertens in the same run; writes docs/speed.md and docs/speed.json.

    python benchmarks/fuse_speed.py [--sizes 0.25 6 24] [--runs 3] [--main-run runs/main]
    python benchmarks/fuse_speed.py --gpu      # on a CUDA machine: 4K fast-path latency, training MFU

Inputs are the darkest and brightest exposure of a real bracket (``../shared/data/brackets/test``,
else the embedded sample set) resized to each size and saved as JPEG; every command writes a JPEG.
"Whole command" is a fresh process (interpreter start, imports, reading, fusing, writing); "in
process" times ``fuse_files`` alone in a process that has already fused once. Peak memory is
the process's maximum resident set. Each figure is the median of ``--runs`` runs; fusionkit and
OpenCV runs alternate so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {0.25: (612, 408), 6: (3000, 2000), 24: (6000, 4000)}
PRESETS = ("se_strip", "dense_fusion", "kd_baseline")
OPENCV_SCRIPT = """
import sys, cv2, numpy as np
out, *inputs = sys.argv[1:]
fused = cv2.createMergeMertens().process([cv2.imread(p) for p in inputs])
cv2.imwrite(out, np.clip(fused * 255 + 0.5, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
"""
IN_PROCESS_SCRIPT = """
import sys, time, json
from pathlib import Path
from fusionkit.inference.hardware import keep_freed_memory
keep_freed_memory()
from fusionkit.inference.fuse import fuse_files
small, out, kind, value, *inputs = sys.argv[1:]
options = {"method": value} if kind == "method" else {"checkpoint": Path(value)}
fuse_files([Path(p) for p in small.split(",")], Path(out), **options)  # warm-up: imports, precision probe
start = time.perf_counter()
fuse_files([Path(p) for p in inputs], Path(out), **options)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


#: Mertens alone on decoded photos, fusionkit and OpenCV in one process (the CLI's process settings):
#: the in-process comparison at each size, without decoding, encoding or start-up.
KERNEL_SCRIPT = """
import json, statistics, sys, time
import cv2, numpy as np, torch
from fusionkit.inference.hardware import keep_freed_memory, set_threads
keep_freed_memory()
set_threads(None)
import fusionkit
runs, *inputs = sys.argv[1:]
arrays = [cv2.imread(p).astype(np.float32) / 255 for p in inputs]
exposures = torch.stack([torch.from_numpy(a[..., ::-1].copy()).permute(2, 0, 1) for a in arrays])[None]
mertens, opencv = fusionkit.create("method", "mertens"), cv2.createMergeMertens()
def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
calls = {"fusionkit": lambda: mertens(exposures), "opencv": lambda: opencv.process(arrays)}
result = {}
with torch.inference_mode():
    for name, fn in calls.items():  # each library's runs in a row: caches warm with its own data
        fn()
        result[f"{name}_s"] = statistics.median(timed(fn) for _ in range(int(runs)))
    alternating = {name: [] for name in calls}
    for _ in range(int(runs)):  # calls alternating: each starts from the other library's cache state
        for name, fn in calls.items():
            alternating[name].append(timed(fn))
    result.update({f"{name}_alternating_s": statistics.median(values) for name, values in alternating.items()})
print(json.dumps(result))
"""


#: Runs a command as a grandchild of a small process: Linux carries a process's peak-memory mark
#: across fork and exec, so a child forked from this (large) process would report our own peak.
LAUNCHER = """
import os, sys, time
report, *command = sys.argv[1:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(command[0], command)
_, status, usage = os.wait4(pid, 0)
open(report, "w").write(f"{time.perf_counter() - start} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident GB, stdout) of one command, in a fresh process."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as report:
        result = subprocess.run([sys.executable, "-c", LAUNCHER, report.name, *command], capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
        seconds, peak_kb = Path(report.name).read_text().split()
    return float(seconds), int(peak_kb) / 2**20, result.stdout


def make_inputs(folder: Path, source: list[Path]) -> dict[float, list[Path]]:
    """The bracket resized to each size, as JPEG quality 95."""
    from PIL import Image

    inputs = {}
    for megapixels, (width, height) in SIZES.items():
        inputs[megapixels] = []
        for index, path in enumerate(source):
            target = folder / f"{megapixels}mp_{index}.jpg"
            Image.open(path).convert("RGB").resize((width, height), Image.BICUBIC).save(target, quality=95)
            inputs[megapixels].append(target)
    return inputs


def source_bracket() -> list[Path]:
    """Darkest and brightest exposure of a real scene, or of the embedded sample set."""
    shared = Path(os.environ.get("FUSIONKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
    scene = shared / "brackets" / "test" / "pmef1-devil-s-tower"
    if not scene.is_dir():
        from fusionkit.synthetic import ensure_sample

        scene = next(p for p in sorted((ensure_sample() / "test" / "inputs").iterdir()) if p.is_dir())
    files = sorted(scene.glob("*.jpg"))
    return [files[0], files[-1]]


def student_checkpoints(folder: Path, main_run: Path | None) -> dict[str, Path]:
    """A checkpoint per student preset at the main job's width; se_strip is the main job's own if given.

    Speed does not depend on the weights, so presets without a trained run are saved untrained.
    """
    import fusionkit
    from fusionkit.runs.checkpoint import make_recipe, save_model
    from fusionkit.training.config import TrainConfig

    width = TrainConfig().width
    checkpoints = {}
    for preset in PRESETS:
        if preset == "se_strip" and main_run is not None and (main_run / "student.safetensors").exists():
            checkpoints[preset] = main_run / "student.safetensors"
            continue
        model = fusionkit.create("student", preset, width=width)
        stem = folder / preset
        save_model(stem, model, make_recipe("student", preset, {"width": width}, role="student", color="rgb"))
        checkpoints[preset] = stem.with_suffix(".safetensors")
    return checkpoints


def cpu_benchmark(args: argparse.Namespace) -> dict:
    from fusionkit.inference.hardware import cpu_description

    folder = Path(tempfile.mkdtemp(prefix="fuse_speed_"))
    inputs = make_inputs(folder, source_bracket())
    (folder / "opencv_mertens.py").write_text(OPENCV_SCRIPT)
    fusionkit_cli = [sys.executable, "-m", "fusionkit", "fuse"]
    candidates = {f"student {p}": ["--checkpoint", str(c)] for p, c in student_checkpoints(folder, args.main_run).items()}
    candidates["mertens"] = ["--method", "mertens"]
    rows = []
    for megapixels in args.sizes:
        files = [str(p) for p in inputs[megapixels]]
        small = ",".join(str(p) for p in inputs[0.25])
        for name, option in candidates.items():
            whole, memory, opencv, opencv_memory, inner = [], [], [], [], []
            for _ in range(args.runs):
                wall, peak, _ = run_measured(fusionkit_cli + files + ["-o", str(folder / "out.jpg")] + option)
                whole.append(wall)
                memory.append(peak)
                wall, peak, _ = run_measured([sys.executable, str(folder / "opencv_mertens.py"), str(folder / "cv.jpg"), *files])
                opencv.append(wall)
                opencv_memory.append(peak)
            kind = "method" if option[0] == "--method" else "checkpoint"
            _, inner_peak, out = run_measured([sys.executable, "-c", IN_PROCESS_SCRIPT, small, str(folder / "in.jpg"), kind, option[1], *files])
            inner.append(json.loads(out.strip().splitlines()[-1])["seconds"])
            row = {
                "what": name, "megapixels": megapixels, "size": "x".join(map(str, SIZES[megapixels])),
                "command_s": statistics.median(whole), "command_gb": max(memory),
                "in_process_s": statistics.median(inner), "in_process_gb": inner_peak,
                "opencv_s": statistics.median(opencv), "opencv_gb": max(opencv_memory),
            }
            row["ratio"] = row["command_s"] / row["opencv_s"]
            if name == "mertens":
                runs = str(max(args.runs, 20 if megapixels < 1 else 3))
                _, _, out = run_measured([sys.executable, "-c", KERNEL_SCRIPT, runs, *files])
                row["kernel"] = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(f"{name:>20} {row['size']:>9}: command {row['command_s']:.2f} s {row['command_gb']:.2f} GB | "
                  f"in process {row['in_process_s']:.2f} s | OpenCV {row['opencv_s']:.2f} s {row['opencv_gb']:.2f} GB | "
                  f"{row['ratio']:.2f}x", flush=True)
    import cv2
    import torch

    return {"cpu": cpu_description(), "cores": os.cpu_count(), "opencv": cv2.__version__, "torch": torch.__version__,
            "runs": args.runs, "rows": rows}


def quality_check(args: argparse.Namespace) -> dict:
    """MEF-SSIM of the main job's student on brackets/test (darkest + brightest): fast path vs full resolution."""
    import torch

    import fusionkit
    from fusionkit.data.io import read_image
    from fusionkit.inference.fuse import DEFAULT_WORK_SIZE
    from fusionkit.inference.fuser import Fuser

    shared = Path(os.environ.get("FUSIONKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
    scenes = sorted(p for p in (shared / "brackets" / "test").iterdir() if p.is_dir())
    fusers = {None: Fuser.from_checkpoint(args.main_run), DEFAULT_WORK_SIZE: Fuser.from_checkpoint(args.main_run, work_size=DEFAULT_WORK_SIZE)}
    metric = fusionkit.create("metric", "mef_ssim")
    scores: dict[str, list[float]] = {"full resolution": [], f"work size {DEFAULT_WORK_SIZE}": []}
    with torch.inference_mode():
        for scene in scenes:
            files = sorted(scene.glob("*.jpg"))
            exposures = torch.stack([read_image(files[0]), read_image(files[-1])])[None]
            for (label, work_size) in zip(scores, (None, DEFAULT_WORK_SIZE)):
                fused = fusers[work_size](exposures)
                scores[label].append(metric((fused * 255).round() / 255, exposures).item())
    means = {label: statistics.mean(values) for label, values in scores.items()}
    worst = max(abs(a - b) for a, b in zip(*scores.values()))
    print(f"MEF-SSIM on {len(scenes)} brackets/test scenes: {means}; largest per-scene difference {worst:.5f}")
    return {"run": os.path.relpath(args.main_run, REPO), "scenes": len(scenes), "mean_mef_ssim": means, "largest_scene_difference": worst}


def gpu_benchmark(args: argparse.Namespace) -> dict:
    from gpu_speed import gpu_figures

    return gpu_figures(args)


def render(results: dict) -> str:
    lines = ["# Speed", "",
             "Made by `python benchmarks/fuse_speed.py` (CPU) and `python benchmarks/fuse_speed.py --gpu` (GPU);",
             "figures come from docs/speed.json. Inputs: the darkest and brightest exposure of a real bracket,",
             "resized and saved as JPEG; every command writes a JPEG. Students run their fast path (network at",
             "`--work-size 512`, weights upsampled by a guided filter, blending at full resolution).", ""]
    cpu = results.get("cpu")
    if cpu:
        lines += [f"## CPU: {cpu['cpu']}", "",
                  f"{cpu['cores']} cores; OpenCV {cpu['opencv']}. Median of {cpu['runs']} runs; fusionkit and OpenCV alternate.",
                  "", "| what | size | `fusionkit fuse` (whole command) | peak memory | in process | OpenCV MergeMertens script | its peak memory | command / OpenCV |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in cpu["rows"]:
            lines.append(f"| {r['what']} | {r['size']} ({r['megapixels']} MP) | {r['command_s']:.2f} s | {r['command_gb']:.2f} GB | "
                         f"{r['in_process_s']:.2f} s | {r['opencv_s']:.2f} s | {r['opencv_gb']:.2f} GB | {r['ratio']:.2f}x |")
        lines.append("")
        kernels = [r for r in cpu["rows"] if "kernel" in r]
        if kernels:
            lines += ["Mertens alone on decoded photos, both libraries in one process (medians; no decoding, encoding or "
                      "start-up). First each library's runs in a row, then the calls alternating, where each call "
                      "starts from the other library's cache state:", "",
                      "| size | fusionkit `mertens` | OpenCV MergeMertens | fusionkit / OpenCV | alternating: fusionkit | OpenCV | fusionkit / OpenCV |",
                      "|---|---|---|---|---|---|---|"]
            lines += [_kernel_row(r) for r in kernels]
            lines.append("")
    quality = results.get("quality")
    if quality:
        (full, full_score), (fast, fast_score) = quality["mean_mef_ssim"].items()
        lines += ["## Fast path against full resolution", "",
                  f"MEF-SSIM of the main job's student (`{quality['run']}`) on the darkest and brightest exposure of the "
                  f"{quality['scenes']} scenes of `brackets/test`: {full} {full_score:.5f}, {fast} {fast_score:.5f} "
                  f"(difference {fast_score - full_score:+.5f}; largest per-scene difference {quality['largest_scene_difference']:.5f}).", ""]
    gpu = results.get("gpu")
    if gpu:
        lines += [f"## GPU: {gpu['device']}", "", gpu.get("note", ""), ""]
        lines += ["| what | figure |", "|---|---|"] + [f"| {k} | {v} |" for k, v in gpu["figures"].items()] + [""]
    return "\n".join(lines)


def _kernel_row(row: dict) -> str:
    """One size's in-process Mertens timings, in a row and alternating (older results have only the former)."""
    k = row["kernel"]
    cells = [f"{row['size']} ({row['megapixels']} MP)", f"{k['fusionkit_s'] * 1e3:.1f} ms", f"{k['opencv_s'] * 1e3:.1f} ms",
             f"{k['fusionkit_s'] / k['opencv_s']:.2f}x"]
    if "fusionkit_alternating_s" in k:
        fusionkit, opencv = k["fusionkit_alternating_s"], k["opencv_alternating_s"]
        cells += [f"{fusionkit * 1e3:.1f} ms", f"{opencv * 1e3:.1f} ms", f"{fusionkit / opencv:.2f}x"]
    else:
        cells += ["", "", ""]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--main-run", type=Path, default=REPO / "runs" / "main", help="the main job's run folder")
    parser.add_argument("--gpu", action="store_true", help="GPU figures instead of CPU ones (needs CUDA)")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    json_path = args.out / "speed.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    if args.gpu:
        results["gpu"] = gpu_benchmark(args)
    else:
        results["quality"] = quality_check(args)
        results["cpu"] = cpu_benchmark(args)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "speed.md").write_text(render(results))
    print(f"wrote {args.out / 'speed.md'}")


if __name__ == "__main__":
    main()
