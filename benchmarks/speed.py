"""Inference speed of every student preset, the teacher and the training-free methods (weights do not
change speed, so no training is needed): a Markdown table for docs/.

    python benchmarks/speed.py --size 512 --batch 1 --precision fp32 --out docs/speed_cpu.md
    python benchmarks/speed.py --size 512 --batch 8 --precision bf16 --precision fp32 --out docs/speed_gpu.md   # on a GPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import fusionkit
from fusionkit.evaluation.bench import Candidate, machine_info, speed_of
from fusionkit.inference.device import pick_device
from fusionkit.inference.fuser import Fuser
from fusionkit.evaluation.report import SPEED_COLUMNS, _get

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--width", type=int, default=64, help="student/teacher width (the paper's 64)")
    parser.add_argument("--precision", action="append", choices=list(DTYPES), help="repeatable; default: fp32")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    rows = []
    for precision in args.precision or ["fp32"]:
        fusers = [Fuser(fusionkit.create("student", name, width=args.width).eval(), "student", f"{name} (w{args.width})")
                  for name in ("kd_baseline", "dense_fusion", "se_strip")]
        fusers.append(Fuser(fusionkit.create("teacher", "ae", width=args.width).eval(), "teacher", f"ae teacher (w{args.width})"))
        fusers += [Fuser.from_method(name) for name in ("mertens", "mean")]
        for cand in (Candidate(fuser.to(device)) for fuser in fusers):
            speed = speed_of(cand, size=args.size, batch=args.batch, device=device, autocast_dtype=DTYPES[precision],
                             channels_last=cuda, compile_model=False, iters=args.iters or (50 if cuda else 5), warmup=3)
            rows.append([cand.fuser.label, precision] + ["-" if _get({"speed": speed}, path) is None else fmt.format(_get({"speed": speed}, path))
                                             for _, path, fmt, _ in SPEED_COLUMNS])
            print(" | ".join(rows[-1]), flush=True)
    info = machine_info(device)
    lines = [f"Machine: {', '.join(f'{k}: {v}' for k, v in info.items())}  ",
             f"Input: {args.batch} pair(s) of {args.size}x{args.size} per call; channels_last on CUDA; inference mode.", "",
             "| model | precision | " + " | ".join(c[0] for c in SPEED_COLUMNS) + " |", "|" + "---|" * (len(SPEED_COLUMNS) + 2)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    torch.backends.cudnn.benchmark = True
    main()
