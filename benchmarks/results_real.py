"""Regenerate docs/results_real.md: trained students against mertens and mean on real photographs.

    python benchmarks/results_real.py --run "main job=runs/main" --run "long recipe=runs/long"

Real brackets without a reference (``brackets/test``, darkest + brightest exposure of each scene) are
scored by the no-reference metrics (MEF-SSIM, Q^AB/F, Q_MI); SICE (``sice/test``, two exposures and a
reference chosen by SICE's authors) by PSNR and SSIM to the reference and by MEF-SSIM. The data folder
is ``--data``, else $FUSIONKIT_SHARED_DATA, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

import fusionkit
from fusionkit.colour import luma
from fusionkit.data.brackets import find_brackets
from fusionkit.data.io import read_image
from fusionkit.evaluation.bench import run_bench
from fusionkit.evaluation.report import table_rows
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.runs.checkpoint import load_model, read_recipe

ROOT = Path(__file__).resolve().parent.parent
#: (dataset, folder under the data root, metrics, what the rows mean)
SETS = (
    ("brackets/test", "brackets/test", ["mef_ssim", "qabf", "nmi", "crushed_shadows"], "19 real brackets, darkest + brightest exposure, no reference"),
    ("sice/test", "sice/test", ["psnr", "ssim", "mef_ssim"], "4 SICE scenes, darkest + brightest, reference chosen by SICE's authors"),
)
METHODS = ["mertens", "mef_opt", "mean"]
GRID_SCENES = 3
GRID_WIDTH = 1400  # pixels across the committed picture
CROP = 160  # side of the difference crops, in pixels of the full-size photos
CROP_SCENES = 4


def data_root(given: str | None) -> Path:
    root = Path(given or os.environ.get("FUSIONKIT_SHARED_DATA") or ROOT.parent / "shared" / "data")
    if not (root / "brackets").is_dir():
        sys.exit(f"error: real data not found in {root} (give --data or set FUSIONKIT_SHARED_DATA)")
    return root


def parse_runs(items: list[str]) -> list[tuple[str, Path]]:
    runs = []
    for item in items:
        label, sep, path = item.rpartition("=")
        run = Path(path)
        if not (run / "student.safetensors").is_file():
            sys.exit(f"error: --run {item}: no student.safetensors in {run}")
        runs.append((label if sep else run.name, run))
    return runs


def training_summary(label: str, run: Path) -> str:
    """One line per run: the command's options and the wall time from the run's own records (a distilled student's:
    its command, and the seconds its log counted)."""
    recipe = read_recipe(run / "student")
    config = recipe.get("config", {})
    if not config:  # benchmarks/distil_mef_opt.py: no fusionkit train config
        log = run / "log.json"
        seconds = json.loads(log.read_text())[-1].get("seconds") if log.is_file() else None
        command = recipe.get("shipped", {}).get("command") or recipe.get("recipe", {}).get("command", "")
        fusing = recipe.get("shipped", {}).get("student_options")
        return f"| {label} | `{run}` | `{command}`{f', fusing with {fusing}' if fusing else ''} | {seconds if seconds is not None else ''} |"
    started = (run / "config.json").stat().st_mtime
    finished = (run / "student.json").stat().st_mtime
    keys = ("student", "student_steps", "teacher_steps", "width", "crop", "batch_size", "exposures", "losses", "data")
    options = ", ".join(f"{k}={config.get(k)}" for k in keys if config.get(k) not in (None, {}, []))
    return f"| {label} | `{run}` | {options}, student options {recipe.get('options', {})} | {finished - started:.0f} |"


def margins(figures: dict, runs: list[str]) -> list[str]:
    """Each run's lead (or lag) over mertens in every column, one line per run and set."""
    lines = []
    for name, report in figures.items():
        by_label = {m["label"]: m["quality"]["extremes"] for m in report["models"]}
        reference = by_label["mertens"]
        for label in runs:
            deltas = ", ".join(
                f"{k.upper().replace('_', '-')} {by_label[label][k] - reference[k]:+.4f}" for k in reference if k != "pairs"
            )
            lines.append(f"- {name}, {label} minus mertens: {deltas}")
    return lines


def stack_pictures(pictures: list[np.ndarray]) -> np.ndarray:
    """The bench grids of each set, one under the other at GRID_WIDTH pixels wide (a light committed figure)."""
    resized = []
    for picture in pictures:
        image = torch.from_numpy(picture).permute(2, 0, 1)[None].float()
        height = round(image.shape[-2] * GRID_WIDTH / image.shape[-1])
        small = torch.nn.functional.interpolate(image, size=(height, GRID_WIDTH), mode="area")[0]
        resized.append(small.round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    return np.concatenate(resized, axis=0)


@torch.no_grad()
def difference_crops(folder: Path, run: Path, max_scenes: int | None) -> np.ndarray:
    """Rows of CROP-px crops (darkest | brightest | mertens | student) where the student's fusion differs most
    from Mertens' (mean luma difference over the crop), on the CROP_SCENES scenes where that difference is largest."""
    student, _ = load_model(run / "student", map_location="cpu")
    mertens = fusionkit.create("method", "mertens")
    found = []
    for bracket in find_brackets(folder.parent, folder.name)[:max_scenes]:
        exposures = torch.stack([read_image(bracket.exposures[0]), read_image(bracket.exposures[-1])])[None]
        panels = [exposures[0, 0], exposures[0, 1], mertens(exposures)[0], fuse_with_model(student.eval(), exposures)[0]]
        difference = (luma(panels[3][None, None]) - luma(panels[2][None, None])).abs()[0]
        windowed = torch.nn.functional.avg_pool2d(difference, CROP, stride=CROP // 4)
        score, at = windowed.flatten().max(0)
        top, left = divmod(int(at), windowed.shape[-1])
        top, left = top * (CROP // 4), left * (CROP // 4)
        row = torch.cat([p[:, top:top + CROP, left:left + CROP] for p in panels], dim=-1)
        found.append((float(score), row))
    rows = [row for _, row in sorted(found, key=lambda item: -item[0])[:CROP_SCENES]]
    return (torch.cat(rows, dim=-2).permute(1, 2, 0) * 255).round().byte().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], help="LABEL=RUN_FOLDER of a trained student (repeatable)")
    parser.add_argument("--data", help="the shared data folder")
    parser.add_argument("--out", default="docs/results_real.md")
    parser.add_argument("--grid", default="docs/images/results_real_grid.jpg")
    parser.add_argument("--max-scenes", type=int, help="only the first N scenes of each set (smoke tests)")
    parser.add_argument("--crops", default="docs/images/results_real_crops.jpg",
                        help="crops where the last --run differs most from mertens on brackets/test")
    args = parser.parse_args()
    root, runs = data_root(args.data), parse_runs(args.run)
    labels = {str(run / "student.safetensors"): label for label, run in runs}

    sections, pictures, figures = [], [], {}
    for name, folder, metrics, what in SETS:
        grid_file = Path(f"/tmp/results_real_{name.replace('/', '_')}.png")
        report = run_bench(
            data_root=root / folder, checkpoints=[run / "student.safetensors" for _, run in runs], methods=METHODS,
            metrics=metrics, speed=False, device="cpu", grid_path=grid_file, grid_scenes=GRID_SCENES, max_scenes=args.max_scenes,
        )
        for model in report["models"]:
            model["label"] = next((labels[p] for p in labels if model["source"] == p), model["label"])
        figures[name] = report
        header, rows = table_rows(report)
        sections += [f"## {name}: {what}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        sections += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        pictures.append(iio.imread(grid_file))
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.grid, stack_pictures(pictures), quality=85)
    if runs:
        iio.imwrite(args.crops, difference_crops(root / SETS[0][1], runs[-1][1], args.max_scenes), quality=90)

    cpu = figures[SETS[0][0]]["machine"]["cpu"]
    lines = [
        f"# Results on real photographs ({cpu})",
        "",
        "Generated by `python benchmarks/results_real.py " + " ".join(f'--run "{label}={run}"' for label, run in runs) + "`.",
        "What was tried to beat mertens, with figures on training and validation data: [pretrained.md](pretrained.md#what-was-tried).",
        "",
        "Higher is better in every column but CRUSHED-SHADOWS (the fraction of pixels below 2 % luma that the brightest",
        "exposure shows between 10 % and 90 %); `*` marks the best. MEF-SSIM is the authors' `mef_ms_ssim` on 8-bit",
        "grey images (checked against their MATLAB values), Q^AB/F is Petrović and Xydeas' edge preservation,",
        "NMI is Hossny's normalised mutual information summed over the two exposures.",
        "",
        "## Training",
        "",
        "| run | folder | options | wall time (s) |",
        "|---|---|---|---|",
        *[training_summary(label, run) for label, run in runs],
        "",
        *sections,
        "## Against mertens",
        "",
        *margins(figures, [label for label, _ in runs]),
        "",
        f"![real scenes: inputs, {', '.join(METHODS)}, each run]({Path(args.grid).relative_to(Path(args.out).parent)})",
        "",
        "Rows of the picture: the first scenes of brackets/test, then of sice/test (the last column is SICE's reference).",
        f"Columns: darkest and brightest exposure, each run, then {', '.join(METHODS)}, in the order of the tables.",
        "",
        *([f"![crops where {runs[-1][0]} differs most from mertens]({Path(args.crops).relative_to(Path(args.out).parent)})",
           "",
           f"Crops of {CROP} px from the brackets/test scenes where the run \"{runs[-1][0]}\" differs most from mertens, "
           "at the place where it differs most: darkest exposure | brightest exposure | mertens | the run.", ""] if runs else []),
    ]
    Path(args.out).write_text("\n".join(lines))
    Path(args.out).with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
