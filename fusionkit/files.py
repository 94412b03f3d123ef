"""Writing files safely, for every layer: atomic writes (a temp file in the target's folder, then an os.replace, so a
crash never leaves half a file), the temps a killed writer left, and ``check_writable`` before the work starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import FusionkitError

#: The process umask, read once: mkstemp makes private (0600) files, which we widen to a normal file's mode.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
#: This machine in temp file names (``.NAME.PID@HOST.XXXXXXXX.tmp``), which thereby say who writes them.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:24] or "host"


def check_writable(path: str | os.PathLike, option: str) -> None:
    """Fail now, not after the work, when ``path`` could not be written: a folder in the way, no permission, or a
    write-protected file (which a replace would otherwise overwrite, even as root)."""
    target = Path(path).absolute()
    if target.is_dir():
        raise FusionkitError(f"{option} {path}: is a folder, not a file")
    if target.is_file() and not target.stat().st_mode & 0o222:
        raise FusionkitError(f"{option} {path}: the file is write-protected; make it writable or give another name")
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise FusionkitError(f"{option} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FusionkitError(f"{option} {path}: cannot write in {folder} (permission denied)")


def _mode_for(target: Path) -> int:
    """The mode the written file gets: the replaced file's own, or a new file's under the umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` in one step, keeping its permissions.

    A failure of the file system (no permission, disk full) is a one-line error naming ``path``.
    """
    target = Path(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except OSError as exc:
        raise FusionkitError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _remove_stale_temps(target: Path) -> None:
    """Delete the temp files of ``target`` left by a writer of this machine that no longer runs (killed mid-write).

    Those of another machine (a shared folder) and names of any other form stay: their writer may be alive.
    """
    stale = re.compile(re.escape(f".{target.name}.") + r"(\d+)@" + re.escape(_HOST) + r"\.[^.]+\.tmp")
    try:
        with os.scandir(target.parent) as entries:
            found = [(entry.path, int(match[1])) for entry in entries if (match := stale.fullmatch(entry.name))]
    except OSError:  # a folder we cannot list: nothing to clean, and the write may still succeed
        return
    for path, pid in found:
        if not _running(pid):
            with contextlib.suppress(OSError):  # another writer may have removed it first
                os.unlink(path)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine; outside POSIX, where no signal 0 probes it, assume it does."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"))
