"""``fusionkit bench``: quality (every metric per test split) and speed of trained models and training-free methods."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from ..data.brackets import find_brackets
from ..data.detect import detect_layout
from ..data.loader import build_loader
from ..data.exposures import fixed_pairs
from ..errors import FusionkitError
from ..inference.device import pick_device
from ..inference.hardware import autocast_dtype
from ..inference.fuser import Fuser
from ..models.fusionnet import count_parameters
from .metrics import Metric
from .pictures import save_grid
from .score import build_metrics, score
from .speed import gflops, measure

SPLITS = ("low", "high", "all")


@dataclass
class Candidate:
    """A fuser under evaluation (trained student or teacher, or training-free method) and its scores per split."""

    fuser: Fuser
    rows: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def load_candidates(checkpoints: list[Path], methods: list[str], device: torch.device) -> list[Candidate]:
    """Each checkpoint's model and each named method, on ``device``, as the bench fuses them: full resolution,
    in the bench's own autocast."""
    fusers = [Fuser.from_checkpoint(path) for path in checkpoints] + [Fuser.from_method(name) for name in methods]
    return [Candidate(fuser.to(device)) for fuser in fusers]


def _split_members() -> dict[str, set[str]]:
    return {split: {",".join(pair) for pair in fixed_pairs(split)} for split in SPLITS}


def bracket_split(exposures: int | str) -> str:
    """The report's name for the bracket protocol: the usual MEF pair, or K spread / all exposures."""
    return "extremes" if exposures == 2 else f"{exposures} exposures"


@torch.no_grad()
def evaluate_quality(
    candidates: list[Candidate], data_root: Path, *, metrics: list[Metric], expert: str, space: str, device: torch.device,
    max_scenes: int | None, grid_scenes: int, autocast_dtype: torch.dtype | None, exposures: int | str = 2,
    max_side: int | None = None,
) -> list[list[Tensor]]:
    """Score every candidate on the test split: Afifi's pairs of ``all`` (``low`` and ``high`` are subsets
    of it), or each bracket's darkest and brightest exposure (``exposures`` to choose others)."""
    afifi = detect_layout(data_root) == "exposure_errors"
    loader = build_loader(data_root, "testing", pairs="all", exposures=2 if afifi else exposures, batch_size=1,
                          expert=expert, device=device, max_side=max_side)
    members = _split_members() if afifi else None
    grid, seen_scenes, teacher_cache = [], [], {}
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    for batch in tqdm(loader, desc="quality", unit="scene", mininterval=1.0):
        scene, evs = batch["scene"][0], batch["evs"][0]
        if scene not in seen_scenes:
            seen_scenes.append(scene)
        if max_scenes is not None and len(seen_scenes) > max_scenes:
            break
        exposure_stack = batch["inputs"].to(device)
        reference = batch["target"].to(device) if batch["target"] is not None else None
        splits = [s for s in SPLITS if evs in members[s]] if afifi else [bracket_split(exposures)]
        outputs = []
        for cand in candidates:
            fuser = cand.fuser
            if fuser.needs_reference and reference is None:
                continue  # an oracle or a teacher has nothing to look at here
            key = (fuser.label, scene)
            if fuser.role == "teacher" and key in teacher_cache:
                output = teacher_cache[key]
            else:
                with autocast:
                    output = fuser(exposure_stack, reference).float()
                if fuser.role == "teacher":
                    teacher_cache[key] = output
            scores = score(metrics, output, exposure_stack, reference, space)
            for split in splits:
                cand.rows.setdefault(split, []).append(scores)
            outputs.append(output[0])
        if len(grid) < grid_scenes and (not afifi or evs == "N1,P1"):
            grid.append([*exposure_stack[0], *outputs, *([reference[0]] if reference is not None else [])])
    return grid


def check_references(metrics: list[Metric], data_root: Path) -> None:
    """Fail before any work when a metric asked for by name needs reference images the test split lacks."""
    wanted = [m.name for m in metrics if m.needs_reference]
    if wanted and detect_layout(data_root) == "brackets" and not any(b.reference for b in find_brackets(data_root, "test")):
        raise FusionkitError(
            f"metric {wanted[0]} compares with a reference image, and the test scenes of {data_root} have none; "
            "choose no-reference metrics (such as mef_ssim) for this data"
        )


def summarise_quality(candidate: Candidate) -> dict[str, dict[str, float]]:
    """Mean of each metric per split, and how many images it averages."""
    result = {}
    for split, rows in candidate.rows.items():
        names = rows[0].keys()
        result[split] = {**{name: sum(r[name] for r in rows) / len(rows) for name in names}, "pairs": len(rows)}
    return result


def speed_of(
    candidate: Candidate, *, size: int, batch: int, device: torch.device, autocast_dtype: torch.dtype | None,
    channels_last: bool, compile_model: bool, iters: int, warmup: int,
) -> dict[str, Any]:
    """Throughput, latency, memory, parameters and GFLOPs per fused stack of exposures at ``size`` x ``size``."""
    fuser = candidate.fuser
    module = fuser.model
    if channels_last:
        module.to(memory_format=torch.channels_last)
    example = torch.rand(batch, fuser.num_inputs or 2 if fuser.role != "teacher" else 1, 3, size, size, device=device)
    if fuser.role == "teacher":
        example = example.expand(-1, 2, -1, -1, -1)
    fn = fuser.speed_fn()
    flops = gflops(fn, example[:1])
    if compile_model and fuser.role != "method":
        fuser.model = torch.compile(module)
        fn = fuser.speed_fn()
    figures = measure(fn, example, warmup=warmup, iters=iters, autocast_dtype=autocast_dtype)
    fuser.model = module
    # torch's counter sees convolutions and matrix products only: a method built from other ops reads None.
    return {**figures, "parameters": count_parameters(module), "gflops_per_pair": flops or None, "size": size, "batch": batch}


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"device": str(device), "cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_bench(
    *, data_root: Path, checkpoints: list[Path], methods: list[str], expert: str = "c", space: str = "rgb",
    device: str = "auto", precision: str = "auto", channels_last: bool | None = None, compile_model: bool = False,
    size: int = 512, batch: int = 1, iters: int | None = None, warmup: int = 3, max_scenes: int | None = None,
    grid_path: Path | None = None, grid_scenes: int = 3, speed: bool = True, metrics: list[str] | None = None,
    exposures: int | str = 2, max_side: int | None = None,
) -> dict[str, Any]:
    """Evaluate every candidate's quality on the test split and its speed; returns the full report."""
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    dtype = autocast_dtype(precision, dev)
    channels_last = cuda if channels_last is None else channels_last
    candidates = load_candidates(checkpoints, methods, dev)
    metric_list = build_metrics(metrics)
    if metrics is not None:
        check_references(metric_list, data_root)
    grid = evaluate_quality(
        candidates, data_root, metrics=metric_list, expert=expert, space=space, device=dev, max_scenes=max_scenes,
        grid_scenes=grid_scenes if grid_path else 0, autocast_dtype=dtype, exposures=exposures, max_side=max_side,
    )
    candidates = [c for c in candidates if c.rows]  # oracles and teachers drop out where there is no reference
    if grid_path and grid:
        save_grid(grid_path, grid)
    report = {
        "machine": machine_info(dev),
        "settings": {"data": str(data_root), "expert": expert, "metric_space": space, "precision": precision, "channels_last": channels_last,
                     "compile": compile_model, "size": size, "batch": batch, "exposures": exposures},
        "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better, "needs_reference": m.needs_reference} for m in metric_list],
        "columns": ["inputs", *[c.fuser.label for c in candidates], "reference"],
        "models": [],
    }
    for cand in candidates:
        fuser = cand.fuser
        entry = {"label": fuser.label, "role": fuser.role, "source": fuser.source, "oracle": fuser.oracle, "quality": summarise_quality(cand)}
        if speed:
            entry["speed"] = speed_of(
                cand, size=size, batch=batch, device=dev, autocast_dtype=dtype, channels_last=channels_last,
                compile_model=compile_model, iters=iters or (50 if cuda else 5), warmup=warmup,
            )
        report["models"].append(entry)
    return report
