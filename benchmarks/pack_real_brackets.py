"""Pack the real training brackets for the pretrained student's recipe (``make pretrained``).

    python benchmarks/pack_real_brackets.py OUT [--data ../shared/data] [--side 512]
    python benchmarks/pack_real_brackets.py OUT --mef-opt-references

The scenes are brackets/train, every 5th held out for validation as OUT/val/<scene>/, and
sice/train (whose own references are not used). By default every exposure is scaled to a long side
of ``--side`` (fuse's work size) into OUT/train/<scene>/NN.jpg: the shipped student's data. With
``--mef-opt-references`` (the distillation that was tried, docs/pretrained.md) the darkest and
brightest exposures are copied at full size into OUT/train/inputs/<scene>/{01,02}.jpg, with the
``mef_opt`` fusion of the pair as OUT/train/reference/<scene>.jpg, the teacher to distil from.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from tqdm import tqdm

import fusionkit
from fusionkit.data.brackets import Bracket, find_brackets
from fusionkit.data.io import read_image, write_image
from fusionkit.data.transforms import fit_within

ROOT = Path(__file__).resolve().parent.parent
VALIDATION_EVERY = 5


def save_exposures(paths: list[Path], folder: Path, side: int | None) -> list[Path]:
    """``paths`` into ``folder`` as 01.jpg, 02.jpg, ..., scaled to a long side of at most ``side`` (None: as they are)."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for number, path in enumerate(paths, 1):
        image = read_image(path)
        saved.append(write_image(folder / f"{number:02d}.jpg", image if side is None else fit_within(image, side)))
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--data", default=os.environ.get("FUSIONKIT_SHARED_DATA") or str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--side", type=int, default=512, help="long side of the packed photos (not with --mef-opt-references)")
    parser.add_argument("--mef-opt-references", action="store_true", help="full-size darkest + brightest pairs with mef_opt's fusion as reference")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    distil = args.mef_opt_references
    side = None if distil else args.side
    training: list[tuple[str, Bracket]] = []
    for index, bracket in enumerate(find_brackets(data / "brackets", "train")):
        if index % VALIDATION_EVERY == VALIDATION_EVERY - 1:
            chosen = [bracket.exposures[0], bracket.exposures[-1]] if distil else bracket.exposures
            save_exposures(chosen, out / "val" / bracket.name, side)
        else:
            training.append((bracket.name, bracket))
    training += [(f"sice-{bracket.name}", bracket) for bracket in find_brackets(data / "sice", "train")]
    teacher = fusionkit.create("method", "mef_opt") if distil else None
    for name, bracket in tqdm(training, desc="packing", unit="scene"):
        if teacher is None:
            save_exposures(bracket.exposures, out / "train" / name, side)
            continue
        reference = out / "train" / "reference" / f"{name}.jpg"
        if reference.exists():
            continue  # a rerun finishes only the rest
        pair = save_exposures([bracket.exposures[0], bracket.exposures[-1]], out / "train" / "inputs" / name, None)
        with torch.inference_mode():
            fused = teacher(torch.stack([read_image(p) for p in pair])[None])
        reference.parent.mkdir(parents=True, exist_ok=True)
        write_image(reference, fused[0])
    print(f"packed into {out}: {len(training)} training and {len(list((out / 'val').iterdir()))} validation scenes")


if __name__ == "__main__":
    main()
