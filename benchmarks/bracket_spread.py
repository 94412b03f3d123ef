"""How wide are real exposure brackets? EV gaps and brightness statistics per scene, per dataset.

    python benchmarks/bracket_spread.py [DATA] [--sample DIR] [--out FILE.json]

DATA is the shared data folder (default: $FUSIONKIT_SHARED_DATA, else ../shared/data beside the
repository); its brackets/{train,test}/<scene>/NN.jpg and sice/{train,test}/inputs/<scene>/NN.jpg
are read (numbered darkest first). --sample DIR also measures a rendered set the same way, beside
the nominal EV gap it was rendered with: the sample set (`fusionkit data sample DIR`) or a set from
`fusionkit data render` (bracket layout, nominal EVs from its manifest), or an older set in Afifi
et al.'s layout (nominal EVs from its file names).

Estimator. No EV is recorded, so the gap between two exposures of a static scene is measured from
the pixels: both 8-bit images are linearised with the inverse sRGB curve, the channel values that
are well exposed in both (linear value in [0.05, 0.9] in each, so neither crushed nor clipped) are
kept, and the gap is log2 of the median of their ratio bright / dark. A pair is not measured when
under 0.2 % of its values are well exposed in both, nor when the estimate exceeds
log2(0.9 / 0.05) - 1 = 3.17 EV: ratios beyond 0.9 / 0.05 cannot be seen, which pulls a wide pair's
median down. The darkest-to-brightest gap is the sum of the consecutive gaps ("chained"): each of
those pairs is narrow and compares mid-tones, whereas a direct wide pair only sees the darkest
image's highlights against the brightest image's shadows, where a tone curve is flattest (on the
emulated camera's brackets a direct estimate can read 1 EV where the chain reads the nominal 3 EV
as 4). Only where a consecutive pair cannot be measured is the extreme pair measured directly
("direct"); where that fails too the scene gets no estimate ("none"), only a lower bound: the sum
of the consecutive gaps that were measured.

The estimate is exact for a plain sRGB response (noise aside); a tone curve on top of it (a
camera's S-curve, this project's emulated camera included) makes it an "sRGB-equivalent" EV that
differs from the exposure change. Since a response and the EVs cannot both be recovered from the
images alone, compare real and synthetic brackets in this common currency: the sample set, rendered
at known EVs, shows how the emulated camera's nominal EVs map onto it.

Brightness statistics, over all channel values: the sRGB mean (0..1) of the darkest and the
brightest exposure, the fraction of clipped values (>= 250) in the brightest and of crushed values
(<= 5) in the darkest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from fusionkit.colour import srgb_to_linear
from fusionkit.data import detect_layout, find_brackets
from fusionkit.data.layout import EV_VALUES, EVS, SPLITS, find_scenes
from fusionkit.data.manifest import RENDER_MANIFEST, SAMPLE_MANIFEST, read_manifest
from fusionkit.synthetic.render import SPLIT_FOLDERS

LOW, HIGH = 0.05, 0.9  # well exposed: linear value within [LOW, HIGH] in both images
MIN_COMMON = 0.002  # fewest well-exposed values in common (fraction of all) for an estimate
MAX_GAP = float(np.log2(HIGH / LOW)) - 1  # widest gap measured on one pair: ratios beyond HIGH/LOW are cut off
CLIPPED, CRUSHED = 250, 5
LINEAR = srgb_to_linear(np.arange(256) / 255).astype(np.float32)
REAL_SETS = {"brackets/train": "brackets/train", "brackets/test": "brackets/test",
             "sice/train": "sice/train/inputs", "sice/test": "sice/test/inputs"}


def pair_gap(dark: np.ndarray, bright: np.ndarray) -> float | None:
    """EV from ``dark`` to ``bright`` (uint8 sRGB arrays of one shape), or None when it cannot be measured."""
    a, b = LINEAR[dark], LINEAR[bright]
    common = (a >= LOW) & (a <= HIGH) & (b >= LOW) & (b <= HIGH)
    if common.mean() < MIN_COMMON:
        return None
    gap = float(np.log2(np.median(b[common] / a[common])))
    return gap if gap <= MAX_GAP else None


def scene_stats(images: list[np.ndarray], nominal: float | None = None) -> dict:
    """Statistics of one scene's exposures, darkest first."""
    if len({im.shape for im in images}) > 1:
        raise ValueError(f"exposures differ in size: {sorted({im.shape for im in images})}")
    steps = [pair_gap(x, y) for x, y in zip(images, images[1:])]
    if None not in steps:
        gap, method = sum(steps), "chained" if len(steps) > 1 else "direct"
    else:
        gap = pair_gap(images[0], images[-1])
        method = "none" if gap is None else "direct"
    measured = [s for s in steps if s is not None]
    dark, bright = images[0], images[-1]
    stats = {
        "exposures": len(images), "gap_ev": gap, "method": method, "step_ev": steps,
        "gap_at_least_ev": gap if gap is not None else (sum(measured) if measured else None),
        "dark_mean": float(dark.mean() / 255), "bright_mean": float(bright.mean() / 255),
        "bright_clipped": float((bright >= CLIPPED).mean()), "dark_crushed": float((dark <= CRUSHED).mean()),
    }
    return stats if nominal is None else {**stats, "nominal_gap_ev": nominal}


def real_scenes(folder: Path):
    for scene in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(scene.glob("[0-9][0-9].jpg"))
        if len(files) >= 2:
            yield scene.name, [iio.imread(f) for f in files], None


def sample_scenes(root: Path, split: str):
    """Scenes of a rendered set, with the nominal gap between its darkest and brightest exposure."""
    if detect_layout(root) == "exposure_errors":
        for scene in find_scenes(root, split):
            yield scene.name, [iio.imread(scene.inputs[ev]) for ev in EVS], EV_VALUES[EVS[-1]] - EV_VALUES[EVS[0]]
        return
    manifest = read_manifest(root, SAMPLE_MANIFEST) or read_manifest(root, RENDER_MANIFEST) or {}
    evs = manifest.get("evs", {})
    for bracket in find_brackets(root, split):
        nominal = evs[bracket.name][-1] - evs[bracket.name][0] if bracket.name in evs else None
        yield bracket.name, [iio.imread(f) for f in bracket.exposures], nominal


def sample_splits(root: Path) -> list[str]:
    """The splits a rendered set has (Afifi's folder names, or train / val / test)."""
    names = SPLITS if detect_layout(root) == "exposure_errors" else SPLIT_FOLDERS.values()
    return [split for split in names if (root / split).is_dir()]


def summary(label: str, rows: dict[str, dict]) -> str:
    columns = [("gap_ev", "darkest->brightest EV", "{:.2f}"), ("gap_at_least_ev", "  same, or a lower bound", "{:.2f}"),
               ("step_ev", "consecutive EV", "{:.2f}"),
               ("dark_mean", "darkest sRGB mean", "{:.3f}"), ("bright_mean", "brightest sRGB mean", "{:.3f}"),
               ("dark_crushed", "darkest crushed <=5", "{:.3f}"), ("bright_clipped", "brightest clipped >=250", "{:.3f}")]
    if not rows:
        return f"{label}: no scene with two or more exposures"
    methods = [r["method"] for r in rows.values()]
    counts = ", ".join(f"{m} {methods.count(m)}" for m in ("direct", "chained", "none") if m in methods)
    lines = [f"{label}: {len(rows)} scenes, {min(r['exposures'] for r in rows.values())}-"
             f"{max(r['exposures'] for r in rows.values())} exposures; gap {counts}"]
    nominal = {r.get("nominal_gap_ev") for r in rows.values()} - {None}
    if 0 < len(nominal) <= 3:
        lines[0] += f"; nominal gap {', '.join(f'{n:g}' for n in sorted(nominal))} EV"
    elif nominal:
        columns.insert(0, ("nominal_gap_ev", "nominal gap EV", "{:.2f}"))
    for key, name, fmt in columns:
        if key == "gap_at_least_ev" and "none" not in methods:
            continue
        values = [v for r in rows.values() for v in (r.get(key) if isinstance(r.get(key), list) else [r.get(key)]) if v is not None]
        if values:
            q = np.percentile(values, [0, 25, 50, 75, 100])
            lines.append(f"  {name:<24} median {fmt.format(q[2])}  IQR {fmt.format(q[1])}-{fmt.format(q[3])}  "
                         f"min {fmt.format(q[0])}  max {fmt.format(q[4])}  (n={len(values)})")
    return "\n".join(lines)


def default_data() -> Path:
    env = os.environ.get("FUSIONKIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=None, help="shared data folder")
    parser.add_argument("--sample", type=Path, help="also measure this rendered set (sample set or `fusionkit data render` output)")
    parser.add_argument("--out", type=Path, help="write the per-scene table to this JSON file")
    args = parser.parse_args()
    data = args.data or default_data()
    if not all((data / folder).is_dir() for folder in REAL_SETS.values()):
        sys.exit(f"error: no shared data in {data} (expected brackets/ and sice/); pass DATA or set FUSIONKIT_SHARED_DATA")
    sources = {label: real_scenes(data / folder) for label, folder in REAL_SETS.items()}
    if args.sample:
        if not args.sample.is_dir():
            sys.exit(f"error: sample set not found: {args.sample}; write one with `fusionkit data sample {args.sample}`")
        sources.update({f"sample/{split}": sample_scenes(args.sample, split) for split in sample_splits(args.sample)})

    table = {}
    for label, scenes in sources.items():
        table[label] = {name: scene_stats(images, nominal) for name, images, nominal in scenes}
        print(summary(label, table[label]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(table, indent=1) + "\n")
        print(f"per-scene table: {args.out}")


if __name__ == "__main__":
    main()
