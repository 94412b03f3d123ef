"""Run folders: finding trained runs (the newest complete student under ``runs/`` is the default for
bench and fuse), the checkpoint a command-line path names, and owning a folder while training writes it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from ..errors import FusionkitError, param

RUNS_DIR = Path("runs")
#: Held by the process training in a run folder, so a second ``train`` on the folder stops at once.
LOCK_NAME = ".lock"
#: What ``train`` writes in a run folder before its first checkpoint (docs/training.md lists the folder):
#: a run that fails by then removes these, and only these, if it added them.
RUN_ENTRIES = (LOCK_NAME, "config.json", "log.jsonl", "log.csv", "tensorboard")


def _complete(recipe_path: Path) -> bool:
    try:
        recipe = json.loads(recipe_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(recipe, dict) and bool(recipe.get("complete"))


def latest_run(root: str | Path = RUNS_DIR) -> Path | None:
    """The most recently written run folder holding a complete student, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = [p.parent for p in root.glob("*/student.json") if _complete(p)]
    return max(done, key=lambda p: (p / "student.json").stat().st_mtime) if done else None


def shipped_student(root: str | Path = RUNS_DIR) -> Path:
    """The first installed ``pretrained`` student, for when ``root`` holds no trained run; else a one-line error."""
    from .. import available, create

    shipped = available("pretrained")
    if not shipped:
        raise FusionkitError(f"no trained run under {root}/ and no pretrained student installed; train one with `fusionkit train` or pass {param('checkpoint')}")
    return Path(create("pretrained", shipped[0].name))


def checkpoint_file(path: str | Path, option: str = param("checkpoint"), role: str = "student") -> Path:
    """The checkpoint a command-line path names: a ``.safetensors`` file as given (dots and all), or a run folder's ``role``."""
    path = Path(path)
    if path.is_dir():
        return path / f"{role}.safetensors"
    if path.name.endswith(".safetensors"):
        return path
    raise FusionkitError(f"{option} {path}: not a checkpoint; give a .safetensors file or a run folder")


def checkpoints_in(path: str | Path, option: str = param("checkpoint")) -> list[Path]:
    """A checkpoint file as given, or a run folder's student and teacher (whichever exist)."""
    path = Path(path)
    if path.is_dir():
        found = [path / f"{role}.safetensors" for role in ("student", "teacher") if (path / f"{role}.json").exists()]
        if not found:
            raise FusionkitError(f"{option} {path}: no student.json or teacher.json in this folder")
        return found
    return [checkpoint_file(path, option)]


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a run folder holds any checkpoint (something ``--resume`` or ``fuse`` could use)."""
    return any(Path(run_dir).glob("*.safetensors"))


def check_fresh(run_dir: Path) -> None:
    """A new run refuses a folder that already holds one (its config.json), pointing to --resume."""
    if (Path(run_dir) / "config.json").exists():
        raise FusionkitError(f"{param('run_dir')} {run_dir} already holds a run; use {param('resume')} {run_dir} or another folder")


@contextlib.contextmanager
def own_run_folder(run_dir: str | Path, *, fresh: bool) -> Iterator[Path]:
    """Hold ``run_dir`` while training writes it; a second process asking for it gets a one-line error.

    A fresh run refuses a folder that already holds a run. If it fails before its first checkpoint,
    what it added is removed (the folders too, if it made them and nothing else was put there), so the
    corrected command can reuse it.
    """
    run_dir = Path(run_dir)
    made = _make_folder(run_dir)
    before = set(os.listdir(run_dir))  # taken before locking, so a failed run removes its lock file too
    with _locked(run_dir):
        if fresh:
            check_fresh(run_dir)
        try:
            yield run_dir
        except BaseException:
            if fresh and not has_checkpoint(run_dir):
                _remove_added(run_dir, before, made)
            raise


def _make_folder(run_dir: Path) -> Path | None:
    """Create ``run_dir``; returns the outermost folder this call created (None if it was there)."""
    if run_dir.is_dir():
        return None
    outermost = run_dir
    while not outermost.parent.exists():
        outermost = outermost.parent
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FusionkitError(f"{param('run_dir')} {run_dir}: cannot create the folder ({exc.strerror})") from None
    return outermost


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock, or fail at once (never wait) naming the folder."""
    lock = FileLock(run_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FusionkitError(f"{param('run_dir')} {run_dir} is in use by another fusionkit train; wait for it to end or use another folder") from None
    except OSError as exc:
        raise FusionkitError(f"{param('run_dir')} {run_dir}: cannot write there ({exc.strerror})") from None
    try:
        yield
    finally:
        lock.release()


def _remove_added(run_dir: Path, before: set[str], made: Path | None) -> None:
    """Undo a failed fresh run: the run's own entries it added, then the folders it made if they are empty;
    what another process put there meanwhile stays."""
    for name in set(os.listdir(run_dir)) - before:
        if name in RUN_ENTRIES:
            _remove(run_dir / name)
    if made is not None:
        _remove_empty_folders(run_dir, made)


def _remove(entry: Path) -> None:
    """Delete a file, link or folder tree (a link itself, never what it points to)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _remove_empty_folders(run_dir: Path, made: Path) -> None:
    """Remove ``run_dir`` and its parents up to ``made`` (the outermost folder the run made), stopping at one not empty."""
    folder = run_dir
    while True:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there
            return
        if folder == made:
            return
        folder = folder.parent
