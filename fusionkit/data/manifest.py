"""Folders of generated files kept by a manifest: a complete one is reused untouched, an interrupted,
outdated or damaged one rewritten, and a non-empty folder without the manifest refused. The manifest
says ``complete: false`` while files are written, so readers can refuse an interrupted folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from ..errors import FusionkitError
from ..files import write_json
from .errors import DatasetLayoutError

#: The manifests of the sets fusionkit writes (``fusionkit.synthetic``), named here so readers can refuse an interrupted one.
RENDER_MANIFEST = "fusionkit_render.json"
SAMPLE_MANIFEST = "fusionkit_sample.json"


def read_manifest(root: str | os.PathLike, name: str) -> dict | None:
    """The manifest ``root/name``, None when there is none, {} when it is unreadable (to be rewritten)."""
    path = Path(root) / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def lock_name(name: str) -> str:
    """The lock file beside manifest ``name``: ``fusionkit_sample.json`` -> ``.fusionkit_sample.lock``."""
    return f".{Path(name).stem}.lock"


def ensure_generated(
    root: Path, name: str, key: dict, files: list[str], generate: Callable[[], dict[str, Any]], *, what: str
) -> dict:
    """Make ``root`` hold the complete output described by ``key``; return its manifest.

    ``files`` are the paths (relative to ``root``) that ``generate()`` will write; ``generate``
    returns what the manifest records besides ``key`` and the files' sizes. A file lock makes
    concurrent calls (torchrun ranks) safe. ``what`` names the content in the refusal message.
    """
    manifest = complete_manifest(root, name, key)
    if manifest is not None:  # the usual case: touch nothing
        return manifest
    check_not_foreign(root, name, what)
    _make_folder(root)
    with FileLock(str(root / lock_name(name))):
        manifest = complete_manifest(root, name, key)
        if manifest is not None:
            return manifest
        check_not_foreign(root, name, what)
        previous = read_manifest(root, name)
        if previous and previous.get("complete"):  # an interruption from here on leaves the folder marked unfinished
            write_json(root / name, {**previous, "complete": False})
        _remove_previous(root, previous)
        write_json(root / name, {**key, "complete": False, "files": {f: None for f in files}})
        record = generate()
        manifest = {**key, "complete": True, **record, "files": {f: (root / f).stat().st_size for f in files}}
        write_json(root / name, manifest)
    return manifest


def complete_manifest(root: Path, name: str, key: dict) -> dict | None:
    """The manifest if it describes a complete output made with ``key`` whose files are all there, sizes unchanged."""
    manifest = read_manifest(root, name)
    if manifest is None or not manifest.get("complete") or any(manifest.get(k) != v for k, v in key.items()):
        return None
    for relative, size in manifest["files"].items():
        path = root / relative
        if not path.is_file() or path.stat().st_size != size:
            return None
    return manifest


def check_finished(root: Path, name: str, command: str) -> None:
    """Refuse a folder whose manifest says its writing was interrupted: a reader would use part of it silently."""
    manifest = read_manifest(root, name)
    if manifest is not None and not manifest.get("complete"):
        raise DatasetLayoutError(
            f"{root} holds a set interrupted while being written; rerun `{command}` with the same options to finish it"
        )


def _make_folder(root: Path) -> None:
    """Create ``root`` and its parents; a file in the way or no permission to write there is a one-line error naming it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FusionkitError(f"cannot write in {root}: {exc.strerror or exc}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise FusionkitError(f"cannot write in {root}: permission denied")


def check_not_foreign(root: Path, name: str, what: str) -> None:
    """Refuse to write into a folder with other content (a real dataset, say) than ours."""
    if root.is_dir() and read_manifest(root, name) is None and any(p.name != lock_name(name) for p in root.iterdir()):
        raise DatasetLayoutError(f"{root} is not empty and holds no {what}; choose a new or empty folder")


def _remove_previous(root: Path, previous: dict | None) -> None:
    """Delete the files an older or interrupted output listed, and the folders that leaves empty.

    The manifest may have been written by anyone: a listed path is deleted only if it stays inside
    ``root`` without passing through a link, so no manifest can reach a file elsewhere.
    """
    folders = set()
    for relative in (previous or {}).get("files", {}):
        path = _inside(root, relative)
        if path is None:
            continue
        path.unlink(missing_ok=True)
        folders.update(path.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):  # deepest first
        if folder != root and root in folder.parents and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _inside(root: Path, relative: Any) -> Path | None:
    """``root / relative`` if it names a place inside ``root`` reached through real folders only, else None."""
    if not isinstance(relative, str) or Path(relative).is_absolute() or ".." in Path(relative).parts:
        return None
    path = root
    for part in Path(relative).parts[:-1]:
        path = path / part
        if path.is_symlink() or not path.is_dir():
            return None
    return path / Path(relative).name  # a link there is itself deleted, never what it points to
