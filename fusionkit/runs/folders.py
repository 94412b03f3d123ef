"""Finding trained runs: the newest complete student under ``runs/`` is the default for bench and fuse."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FusionkitError

RUNS_DIR = Path("runs")


def _complete(recipe_path: Path) -> bool:
    try:
        return bool(json.loads(recipe_path.read_text()).get("complete"))
    except (OSError, json.JSONDecodeError):
        return False


def latest_run(root: str | Path = RUNS_DIR) -> Path | None:
    """The most recently written run folder holding a complete student, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = [p.parent for p in root.glob("*/student.json") if _complete(p)]
    return max(done, key=lambda p: (p / "student.json").stat().st_mtime) if done else None


def default_student(root: str | Path = RUNS_DIR) -> Path:
    """The latest run's student checkpoint, or a one-line error saying how to get one."""
    run = latest_run(root)
    if run is None:
        raise FusionkitError(f"no trained run under {root}/; train one with `fusionkit train` or pass --checkpoint")
    return run / "student.safetensors"


def checkpoints_in(path: str | Path) -> list[Path]:
    """A checkpoint file as given, or a run folder's student and teacher (whichever exist)."""
    path = Path(path)
    if path.is_dir():
        found = [path / f"{role}.safetensors" for role in ("student", "teacher") if (path / f"{role}.json").exists()]
        if not found:
            raise FusionkitError(f"--checkpoint {path}: no student.json or teacher.json in this folder")
        return found
    return [path]
