"""Pack the real training brackets for the pretrained student's recipe (``make pretrained``).

    python benchmarks/pack_real_brackets.py OUT [--data ../shared/data] [--side 512]

Writes OUT/train/<scene>/NN.jpg and OUT/val/<scene>/NN.jpg, each photo scaled to a long side of
``--side`` (fuse's work size): brackets/train, every 5th scene held out for validation, plus
sice/train's exposures (their references are not used). Small enough to carry to a GPU machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from fusionkit.data.brackets import Bracket, find_brackets
from fusionkit.data.io import read_image, write_image
from fusionkit.data.transforms import fit_within

ROOT = Path(__file__).resolve().parent.parent
VALIDATION_EVERY = 5


def save_scaled(bracket: Bracket, folder: Path, side: int) -> None:
    """Each exposure of ``bracket`` into ``folder`` as NN.jpg, scaled (antialiased) to a long side of at most ``side``."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(bracket.exposures, 1):
        write_image(folder / f"{number:02d}.jpg", fit_within(read_image(path), side))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--data", default=os.environ.get("FUSIONKIT_SHARED_DATA") or str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--side", type=int, default=512)
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    with torch.inference_mode():
        for index, bracket in enumerate(find_brackets(data / "brackets", "train")):
            split = "val" if index % VALIDATION_EVERY == VALIDATION_EVERY - 1 else "train"
            save_scaled(bracket, out / split / bracket.name, args.side)
        for bracket in find_brackets(data / "sice", "train"):
            save_scaled(bracket, out / "train" / f"sice-{bracket.name}", args.side)
    print(f"packed into {out}: {len(list((out / 'train').iterdir()))} training and {len(list((out / 'val').iterdir()))} validation scenes")


if __name__ == "__main__":
    main()
