"""Distil ``mef_opt`` into a student that fuses any number of exposures, by regressing the teacher's logits.

    python benchmarks/distil_mef_opt.py teach data/distil [--teacher-option edge_weight=0.15]  # resumable
    python benchmarks/distil_mef_opt.py train data/distil runs/distilled [--steps 1500]       # resumable
    python benchmarks/distil_mef_opt.py score runs/distilled [--student-option shadow_fill=true]  # validation only
    python benchmarks/distil_mef_opt.py ship runs/distilled                                    # the plugin's student

The teacher, ``mef_opt``, runs at full size on the darkest and brightest exposure of every training bracket
(with ``--triplets`` also on the darkest, middle and brightest where there are three or more). The scenes are
``brackets/train`` (every 5th held out for validation, as ``pack_real_brackets.py`` does) and ``sice/train`` (its
references unused). Its logits (one per exposure and 8x8 px, added to the log of Mertens' weights, every pyramid
level) are what the student learns: the network sees the photographs at fuse's work size, and the blend weights
its logits give on Mertens' are pulled towards the teacher's (``--space weights``, mean absolute difference;
``logits``: mean squared difference of the logits themselves, which also counts places where the weights are
settled whatever the logits). Whole-image targets rather than MEF-SSIM on crops: each crop's own optimum pulled
an earlier student away from the whole image's.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

import fusionkit
from fusionkit.api import fit_within, mertens_weights, pyramid_blend
from fusionkit.cli.train import key_values
from fusionkit.colour import luma
from fusionkit.data.brackets import Bracket, find_brackets
from fusionkit.data.io import read_image
from fusionkit.errors import FusionkitError
from fusionkit.evaluation.fusion_metrics import brightest_luma, crushed_shadows, qabf
from fusionkit.evaluation.mef_ssim import mef_ssim_rgb
from fusionkit.evaluation.metrics import psnr
from fusionkit.files import write_atomic, write_json
from fusionkit.inference.hardware import cpu_description
from fusionkit.inference.pipeline import fuse_with_model, student_input
from fusionkit.models.fusionnet import pad_to_multiple
from fusionkit.models.shadow_fill import SHOWN
from fusionkit.runs.checkpoint import load_model, make_recipe, read_recipe, save_model
from fusionkit_kd.pretrained import SE_STRIP_REAL

from pack_real_brackets import VALIDATION_EVERY  # the same held-out scenes as the packed data
from results_real import data_root

WORK_SIZE = 512  # fuse's default work size for weight-map students
STUDENT_OPTIONS = {"width": 32, "num_inputs": None, "fine_levels": None}


def scenes(root: Path) -> tuple[list[tuple[str, Bracket]], list[tuple[str, Bracket]], list[Bracket]]:
    """(training, validation) named brackets, and sice/train (with references) for the tone check."""
    training, validation = [], []
    for index, bracket in enumerate(find_brackets(root / "brackets", "train")):
        (validation if index % VALIDATION_EVERY == VALIDATION_EVERY - 1 else training).append((bracket.name, bracket))
    sice = find_brackets(root / "sice", "train")
    training += [(f"sice-{bracket.name}", bracket) for bracket in sice]
    return training, validation, sice


def subsets(bracket: Bracket, triplets: bool) -> list[list[Path]]:
    """Darkest + brightest; with ``triplets``, also darkest + middle + brightest where there are three or more."""
    photos = bracket.exposures
    chosen = [[photos[0], photos[-1]]]
    if triplets and len(photos) >= 3:
        chosen.append([photos[0], photos[len(photos) // 2], photos[-1]])
    return chosen


def read_bracket(paths: list[Path]) -> torch.Tensor:
    return torch.stack([read_image(p) for p in paths])[None]


def teach(args: argparse.Namespace) -> None:
    """Write the teacher's logits of every training and validation subset to OUT/<split>/<scene>-<K>.safetensors."""
    options = key_values(args.teacher_option, "--teacher-option")
    teacher = fusionkit.create("method", "mef_opt", **options)
    training, validation, _ = scenes(data_root(args.data))
    if args.extra:  # more training scenes (references unused): e.g. brackets rendered by `fusionkit data render`
        training += [(f"extra-{bracket.name}", bracket) for bracket in find_brackets(Path(args.extra), "train")]
    out = Path(args.out)
    jobs = [(split, name, paths) for split, named in (("train", training), ("val", validation)) for name, bracket in named for paths in subsets(bracket, args.triplets)]
    for split, name, paths in tqdm(jobs, desc="teacher logits", unit="bracket"):
        target = out / split / f"{name}-{len(paths)}.safetensors"
        if target.exists():
            continue  # a rerun finishes only the rest
        target.parent.mkdir(parents=True, exist_ok=True)
        logits = teacher.logits(read_bracket(paths))[0].contiguous()
        metadata = {"exposures": json.dumps([str(p) for p in paths]), "teacher": json.dumps({"mef_opt": options})}
        write_atomic(target, lambda tmp: save_file({"logits": logits}, str(tmp), metadata=metadata))


def sample(path: Path, multiple: int, shadow_emphasis: float = 0.0) -> dict:
    """One teacher file as the network's input at the work size and the centred target logits, both padded; the
    mask weighs each pixel, ``1 + shadow_emphasis`` where Mertens' fusion is below 5 % luma but the brightest
    exposure shows 10-90 % (the shadows at risk of turning black) and 2 px around."""
    with safe_open(str(path), "pt") as handle:
        paths = [Path(p) for p in json.loads(handle.metadata()["exposures"])]
        logits = handle.get_tensor("logits")[None]
    small = fit_within(read_bracket(paths), WORK_SIZE)
    size = small.shape[-2:]
    target = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    target = target - target.mean(dim=1, keepdim=True)
    prior = mertens_weights(small)[:, :, 0].clamp_min(1e-12).log()
    padded, _ = pad_to_multiple(small.flatten(0, 1), multiple)
    net_input = student_input(padded.unflatten(0, small.shape[:2]), "rgb")
    pad = (0, net_input.shape[-1] - size[1], 0, net_input.shape[-2] - size[0])
    mask = torch.ones(1, 1, *size)
    if shadow_emphasis:
        lit = brightest_luma(small)[:, None]
        fused = luma(pyramid_blend(small, prior.exp()[:, :, None]).clamp(0, 1))[:, None]
        at_risk = ((fused < 0.05) & (lit >= SHOWN[0]) & (lit <= SHOWN[1])).float()
        mask = mask + shadow_emphasis * F.max_pool2d(at_risk, 5, stride=1, padding=2)  # and 2 px around
    mask = F.pad(mask, pad)
    return {"input": net_input, "target": F.pad(target, pad), "prior": F.pad(prior, pad), "mask": mask, "small": F.pad(small, pad)}


def error(
    model, space: str, batch: dict, tones: torch.nn.Module | None = None, tone_weight: float = 0.0, fine_levels: int | None = None
) -> torch.Tensor:
    """How far the network is from the teacher: in ``logits`` the mean squared difference of the logits, both
    centred over the exposures; in ``weights`` the mean absolute difference of the blend weights they give on
    Mertens' (logits matter only where the weights are not already settled). With ``tone_weight``, plus that
    times the ``tones`` loss of the blend (Mertens' local tones, and no crushed shadows), blended as the student
    blends: with ``fine_levels``, Mertens' weights keep the coarser levels (one level fewer at the work size, about
    half the size of most photographs)."""
    logits, target, mask = model(batch["input"]), batch["target"], batch["mask"]
    if space == "logits":
        logits = logits - logits.mean(dim=1, keepdim=True)
        return ((logits - target).square() * mask).sum() / (mask.sum() * target.shape[1])
    weights = torch.softmax(batch["prior"] + logits, dim=1)
    distance = ((weights - torch.softmax(batch["prior"] + target, dim=1)).abs() * mask).sum() / (mask.sum() * target.shape[1])
    if not tone_weight:
        return distance
    coarse, fine = (None, 0) if fine_levels is None else (torch.softmax(batch["prior"], dim=1)[:, :, None], max(fine_levels - 1, 1))
    fused = pyramid_blend(batch["small"], weights[:, :, None], coarse_weights=coarse, fine_levels=fine).clamp(0, 1)
    return distance + tone_weight * tones(fused, batch["small"], None)


def mertens_error(space: str, item: dict) -> float:
    """The distance for Mertens' own weights (zero logits), the figure to beat."""
    return float(error(lambda x: torch.zeros_like(item["target"]), space, item))


def crops(group: list[dict], batch: int, crop: int, generator: random.Random) -> tuple[torch.Tensor, ...]:
    """``batch`` random crops (with random horizontal flips) of samples that share one exposure count."""
    keys, parts = ("input", "target", "prior", "mask", "small"), []
    for item in (generator.choice(group) for _ in range(batch)):
        h, w = item["input"].shape[-2:]
        size_h, size_w = min(crop, h), min(crop, w)
        top, left = generator.randrange(h - size_h + 1), generator.randrange(w - size_w + 1)
        cut = [item[key][..., top : top + size_h, left : left + size_w] for key in keys]
        if generator.random() < 0.5:
            cut = [p.flip(-1) for p in cut]
        parts.append([F.pad(p, (0, crop - size_w, 0, crop - size_h)) for p in cut])
    return {key: torch.cat(column) for key, column in zip(keys, zip(*parts))}


@torch.no_grad()
def validation_error(model: torch.nn.Module, space: str, samples: list[dict]) -> float:
    model.eval()
    errors = [float(error(model, space, s)) for s in samples]
    model.train()
    return sum(errors) / len(errors)


def train(args: argparse.Namespace) -> None:
    """Regress the teacher's logits; keep the checkpoint with the lowest validation error (``student``)."""
    torch.manual_seed(args.seed)
    generator = random.Random(args.seed)
    options = {**STUDENT_OPTIONS, "fine_levels": args.fine_levels}
    model = fusionkit.create("student", "se_strip", **options)
    if args.init:  # the weights do not depend on fine_levels
        model.load_state_dict(load_model(args.init)[0].state_dict())
    model.train()
    multiple = model.multiple_of
    folder, run = Path(args.teacher), Path(args.run_dir)
    training = [sample(p, multiple, args.shadow_emphasis) for p in tqdm(sorted((folder / "train").glob("*.safetensors")), desc="loading", unit="file")]
    validation = [sample(p, multiple) for p in sorted((folder / "val").glob("*.safetensors"))]
    if not training or not validation:
        sys.exit(f"error: no teacher logits in {folder}/train and {folder}/val (run the teach step first)")
    if args.tone_weight and args.space != "weights":
        sys.exit("error: --tone-weight needs --space weights (the tones are those of the blend)")
    tones = fusionkit.create("loss", "tones", shadow_weight=args.shadow_weight)
    groups: dict[int, list[dict]] = {}
    for item in training:
        groups.setdefault(item["target"].shape[1], []).append(item)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps)))
    run.mkdir(parents=True, exist_ok=True)
    state_path, step, best = run / "distil.state.pt", 0, math.inf
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"]), optimiser.load_state_dict(state["optimiser"]), schedule.load_state_dict(state["schedule"])
        step, best = state["step"], state["best"]
        generator.seed(args.seed + step)
        print(f"resuming at step {step} (best validation error {best:.4f})")
    recipe = make_recipe(
        "student", "se_strip", options, role="student",
        color="rgb", complete=False, losses={f"teacher_{args.space}": 1.0, **({"tones": args.tone_weight} if args.tone_weight else {})},
        recipe={"command": "python benchmarks/distil_mef_opt.py " + " ".join(sys.argv[1:]), "teacher": str(folder),
                "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop, "lr": args.lr, "seed": args.seed,
                "init": args.init, "space": args.space, "tone_weight": args.tone_weight,
                "shadow_weight": args.shadow_weight, "shadow_emphasis": args.shadow_emphasis, "fine_levels": args.fine_levels},
    )
    started, log = time.perf_counter(), []
    if step == 0:
        zero = sum(mertens_error(args.space, s) for s in validation) / len(validation)
        log.append({"step": 0, "validation": round(validation_error(model, args.space, validation), 5), "mertens": round(zero, 5)})
        tqdm.write(json.dumps(log[-1])), sys.stdout.flush()
    counts = sorted(groups)
    weights = [len(groups[k]) for k in counts]
    with tqdm(total=args.steps, initial=step, desc="distilling", unit="step") as bar:
        while step < args.steps:
            group = groups[generator.choices(counts, weights)[0]]
            loss = error(model, args.space, crops(group, args.batch_size, args.crop, generator), tones, args.tone_weight, args.fine_levels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step(), schedule.step()
            step += 1
            bar.update(1), bar.set_postfix(loss=f"{loss.item():.4f}")
            if step % args.eval_every == 0 or step == args.steps:
                found = validation_error(model, args.space, validation)
                log.append({"step": step, "train": round(loss.item(), 5), "validation": round(found, 5), "seconds": round(time.perf_counter() - started)})
                tqdm.write(json.dumps(log[-1])), sys.stdout.flush()
                if found < best:
                    best = found
                    save_model(run / "student", model, {**recipe, "step": step, "complete": step == args.steps, "validation_error": found})
                state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(), "step": step, "best": best}
                write_atomic(state_path, lambda tmp: torch.save(state, tmp))
                write_json(run / "log.json", log)
    print(f"best validation error {best:.4f}; student in {run / 'student.safetensors'}")


@torch.no_grad()
def score(args: argparse.Namespace) -> None:
    """Validation scores of a distilled run against mertens: held-out brackets/train (MEF-SSIM, Q^AB/F, crushed
    shadows) and sice/train (PSNR to SICE's references; training scenes, a check that tones are kept)."""
    _, validation, sice = scenes(data_root(args.data))
    options = key_values(args.student_option, "--student-option")
    model, _ = load_model(Path(args.run) / "student", options=options)  # as it will fuse
    model.eval()
    mertens = fusionkit.create("method", "mertens")
    methods = {"mertens": mertens, "student": lambda x: fuse_with_model(model, x, work_size=WORK_SIZE)}
    if args.teacher:
        methods["teacher"] = fusionkit.create("method", "mef_opt", **key_values(args.teacher_option, "--teacher-option"))
    rows, tones = {label: [] for label in methods}, {label: [] for label in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for _, bracket in validation:  # each pair read once, fused by every method
        x = read_bracket([bracket.exposures[0], bracket.exposures[-1]])
        for label, method in methods.items():
            start = time.perf_counter()
            f = method(x).clamp(0, 1)
            seconds[label] += time.perf_counter() - start
            rows[label].append((float(mef_ssim_rgb(f, x)), float(qabf(f, x)), float(crushed_shadows(f, x))))
    for bracket in sice:
        x, reference = read_bracket([bracket.exposures[0], bracket.exposures[-1]]), read_image(bracket.reference)[None]
        for label, method in methods.items():
            tones[label].append(float(psnr(method(x).clamp(0, 1), reference)))
    results = {}
    for label in methods:
        scored, count = rows[label], len(rows[label])
        results[label] = {
            "mef_ssim": sum(r[0] for r in scored) / count, "qabf": sum(r[1] for r in scored) / count,
            "crushed_shadows": sum(r[2] for r in scored) / count, "sice_train_psnr": sum(tones[label]) / len(tones[label]),
            "seconds_per_pair": seconds[label] / count,
        }
        print(label, json.dumps({k: round(v, 5) for k, v in results[label].items()}), flush=True)
    write_json(Path(args.run) / "validation.json", {**results, "student_options": options, "cpu": cpu_description()})


def ship(args: argparse.Namespace) -> None:
    """Make a scored run's student the plugin's pretrained one, its JSON saying how it was made and how it scored."""
    run = Path(args.run)
    scores = run / "validation.json"
    if not scores.is_file():
        sys.exit(f"error: {scores} not found (run the score step first)")
    validation = json.loads(scores.read_text())
    options = validation.get("student_options", {})
    model, recipe = load_model(run / "student", options=options)
    rounded = lambda row: {key: round(value, 5) for key, value in row.items()}
    init, target = recipe["recipe"].get("init"), Path(args.to).with_suffix("")
    recipe["shipped"] = {
        "command": "make pretrained (docs/pretrained.md): " + recipe["recipe"]["command"],
        "student_options": options,  # as scored: how the shipped student fuses
        "data": "teacher: mef_opt on the darkest + brightest exposure of brackets/train (every 5th scene held out for "
                "validation) and sice/train (references unused), full size; student input: those photos at 512 px",
        "device": cpu_description(),
        # the student it started from, as that one was made (read before the shipped file is replaced)
        "init": init_record(init, target, model),
        "validation": {
            "set": "the held-out brackets/train scenes at full size, darkest + brightest; PSNR on sice/train (training scenes)",
            **rounded(validation["student"]), "mertens": rounded(validation["mertens"]),
        },
    }
    save_model(target, model, recipe)
    print(f"shipped {run / 'student'} as {target}.safetensors")


def init_record(init: str | None, target: Path, model: torch.nn.Module) -> dict | None:
    """How the student a run started from was made. Shipping again the student already shipped (other options,
    the same weights) keeps the record it has: the file the run started from is then that student itself."""
    if not init:
        return None
    shipped = read_recipe(init).get("shipped")
    if Path(init).with_suffix("").resolve() == target.resolve() and shipped is not None:
        current = load_model(target)[0].state_dict()
        if all(torch.equal(value, current[key]) for key, value in model.state_dict().items()):
            return shipped["init"]
    return {"checkpoint": init, "shipped": shipped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the shared data folder (else $FUSIONKIT_SHARED_DATA, else ../shared/data)")
    commands = parser.add_subparsers(dest="command", required=True)
    step = commands.add_parser("teach", help="the teacher's logits of every training and validation bracket")
    step.add_argument("out")
    step.add_argument("--teacher-option", action="append", default=[], help="KEY=VALUE for mef_opt (repeatable)")
    step.add_argument("--triplets", action="store_true", help="also darkest + middle + brightest (twice the teacher's time)")
    step.add_argument("--extra", help="a bracket folder whose train scenes are more training scenes (e.g. `fusionkit data render` output)")
    step = commands.add_parser("train", help="regress the teacher's logits")
    step.add_argument("teacher")
    step.add_argument("run_dir")
    step.add_argument("--steps", type=int, default=1500)
    step.add_argument("--batch-size", type=int, default=8)
    step.add_argument("--crop", type=int, default=192)
    step.add_argument("--lr", type=float, default=1e-3)
    step.add_argument("--eval-every", type=int, default=100)
    step.add_argument("--seed", type=int, default=0)
    step.add_argument("--init", help="a student checkpoint (se_strip, any number of exposures) to start from")
    step.add_argument("--fine-levels", type=int, help="the student's fine_levels (that of the teacher; default: every level)")
    step.add_argument("--space", choices=("logits", "weights"), default="weights", help="where the distance to the teacher is taken")
    step.add_argument("--tone-weight", type=float, default=0.0, help="weight of the tones loss of the blend (Mertens' tones, shadows)")
    step.add_argument("--shadow-weight", type=float, default=10.0, help="the tones loss's shadow_weight (its shadow floor)")
    step.add_argument("--shadow-emphasis", type=float, default=0.0, help="extra weight of the distance where Mertens crushes shadows")
    step = commands.add_parser("score", help="validation scores against mertens")
    step.add_argument("run")
    step.add_argument("--teacher", action="store_true", help="score the teacher too (minutes a scene on a CPU)")
    step.add_argument("--teacher-option", action="append", default=[], help="KEY=VALUE for mef_opt (repeatable)")
    step.add_argument("--student-option", action="append", default=[], help="KEY=VALUE changing how the student fuses (repeatable; ship keeps them)")
    step = commands.add_parser("ship", help="make a scored run's student the plugin's pretrained one")
    step.add_argument("run")
    step.add_argument("--to", default=str(SE_STRIP_REAL), help="the file to write (default: the plugin's pretrained student)")
    args = parser.parse_args()
    try:
        {"teach": teach, "train": train, "score": score, "ship": ship}[args.command](args)
    except FusionkitError as problem:
        sys.exit(f"error: {problem}")


if __name__ == "__main__":
    main()
