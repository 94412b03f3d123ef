"""Every bracket of a folder fused by one command (``fusionkit fuse IN_DIR -o OUT_DIR``).

Each bracket goes through the single-bracket pipeline (:func:`.fuse.fuse_bracket`) with a Fuser built once per
process: in this process, reading the next bracket while the current one fuses; in worker processes; or on a
Dask cluster (:func:`fuse_brackets_on`). An output that exists is complete (written atomically), so it is skipped:
a rerun finishes an interrupted batch. A failed bracket is reported and the others are still fused.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from itertools import islice
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from tqdm import tqdm

from ..data.brackets import Bracket
from ..data.io import is_raw_file
from ..errors import FusionkitError, message_template, param
from ..files import check_writable
from .folder_brackets import brackets_in
from .fuse import FuserOptions, fuse_bracket, fuse_exposures, read_bracket, same_file
from .fuser import Fuser

#: Output formats by name, and the suffix a photo's own format gives (RAW files: TIFF).
FORMATS = ("png", "jpg", "tif")
_OWN_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".tif": "tif", ".tiff": "tif"}
#: Brackets read ahead of the one fusing: one keeps the reader busy while fusing takes longer than reading,
#: and each more holds another bracket of full-size photos in memory.
READ_AHEAD = 1


@dataclass(frozen=True)
class Job:
    """One bracket and the file it is fused into."""

    bracket: Bracket
    output: Path


@dataclass
class Summary:
    """What a batch did: brackets fused, skipped as already done, and failed (name, why)."""

    fused: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"fused {self.fused} brackets, skipped {self.skipped} already done, {len(self.failed)} failed "
                f"in {self.seconds:.1f} s")


#: How the jobs run: given the Fuser built here, its device, the options a worker builds its own from, the bit depth
#: and the jobs, it yields each job as it ends and why it failed (None: it did not).
Runner = Callable[[Fuser, torch.device, FuserOptions, int, list[Job]], Iterator[tuple[Job, "str | None"]]]


def fuse_folder(
    folder: str | os.PathLike, out_dir: str | os.PathLike, options: FuserOptions = FuserOptions(), *,
    group_gap: float | None = None, group_size: int | None = None, image_format: str | None = None, bits: int = 8,
    overwrite: bool = False, workers: int = 1, on_failure: Callable[[str, str], None] | None = None,
) -> Summary:
    """Fuse every bracket of ``folder`` (see :func:`.folder_brackets.brackets_in`) into ``out_dir``/<bracket>.<format>.

    ``workers`` > 1 runs that many processes, each with its own Fuser and an equal share of the CPU threads.
    ``on_failure(bracket name, why)`` is called as each bracket fails.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    options.check()
    if workers < 1:
        raise FusionkitError(f"{param('workers')} {workers}: give 1 or more processes")
    grouped = group_gap is not None or group_size is not None
    if grouped and same_file(folder, out_dir):
        raise FusionkitError(f"{param('output')} {out_dir}: is the folder of the photos, whose fused images would be "
                             "grouped with them next time; give another folder")
    brackets = brackets_in(folder, gap=group_gap, size=group_size, leave_out=out_dir)
    run: Runner = fuse_in_turn if workers == 1 else (
        lambda fuser, device, resolved, bits, todo: fuse_in_processes(resolved, bits, todo, workers))
    return _fuse(brackets, out_dir, options, image_format, bits, overwrite, on_failure, run)


def fuse_brackets_on(
    client, brackets: list[Bracket], out_dir: str | os.PathLike, options: FuserOptions = FuserOptions(), *,
    image_format: str | None = None, bits: int = 8, overwrite: bool = False,
    on_failure: Callable[[str, str], None] | None = None,
) -> Summary:
    """The same batch on a Dask cluster (``client``: a ``dask.distributed.Client``): one task per bracket, each
    worker process building its Fuser once. ``out_dir`` and the photos must be reachable by every worker."""
    from distributed import as_completed as completed

    def run(fuser: Fuser, device: torch.device, resolved: FuserOptions, bits: int, todo: list[Job]) -> Iterator[tuple[Job, str | None]]:
        futures = client.map(fuse_job, [resolved] * len(todo), [bits] * len(todo), todo, pure=False)
        jobs = {future.key: job for future, job in zip(futures, todo)}
        try:
            for future, result in completed(futures, with_results=True, raise_errors=False):
                yield jobs[future.key], reason(result[1]) if future.status == "error" else result
        finally:
            client.cancel(futures)

    options.check()
    return _fuse(brackets, Path(out_dir), options, image_format, bits, overwrite, on_failure, run)


def _fuse(brackets: list[Bracket], out_dir: Path, options: FuserOptions, image_format: str | None, bits: int,
          overwrite: bool, on_failure: Callable[[str, str], None] | None, run: Runner) -> Summary:
    """Plan the jobs, skip those done, build the Fuser here (checking the options; the default model resolved to its
    file, so every worker loads the same one) and ``run`` the rest."""
    started = time.perf_counter()
    jobs = plan(brackets, out_dir, image_format, bits)
    todo = jobs if overwrite else [job for job in jobs if not job.output.exists()]
    summary = Summary(skipped=len(jobs) - len(todo))
    if todo:
        check_writable(todo[0].output, param("output"))
        fuser, device = options.build()
        resolved = options if options.method is not None else replace(options, checkpoint=Path(fuser.source))
        with tqdm(total=len(todo), unit="bracket", desc="fuse", disable=None, file=sys.stderr, dynamic_ncols=True) as bar:
            for job, why in run(fuser, device, resolved, bits, todo):
                if why is None:
                    summary.fused += 1
                else:
                    summary.failed.append((job.bracket.name, why))
                    if on_failure is not None:
                        on_failure(job.bracket.name, why)
                bar.update()
    summary.seconds = time.perf_counter() - started
    return summary


def plan(brackets: list[Bracket], out_dir: Path, image_format: str | None, bits: int) -> list[Job]:
    """Each bracket's output file; refused before any work: a format that cannot hold ``bits``, two brackets of
    one name, an output folder named like an image file."""
    if image_format is not None and image_format not in FORMATS:
        raise FusionkitError(f"{param('image_format')} {image_format}: use one of {', '.join(FORMATS)}")
    if image_format == "jpg" and bits > 8:
        raise FusionkitError(f"{param('image_format')} jpg: JPEG is 8-bit only; use png or tif with {param('bits')} {bits}")
    if image_format == "png" and bits == 32:
        raise FusionkitError(f"{param('image_format')} png: 32-bit float is written as TIFF only; use tif with {param('bits')} 32")
    if out_dir.exists() and not out_dir.is_dir():
        raise FusionkitError(f"{param('output')} {out_dir}: is a file, not a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in _OWN_FORMAT:
        raise FusionkitError(f"{param('output')} {out_dir}: a folder of brackets is fused into a folder; give its name, not an image file's")
    jobs, names = [], {}
    for bracket in brackets:
        if bracket.name in names:
            raise FusionkitError(f"two brackets would both be written as {bracket.name}: {names[bracket.name]} and "
                                 f"{bracket.exposures[0]}; rename one")
        names[bracket.name] = bracket.exposures[0]
        jobs.append(Job(bracket, out_dir / f"{bracket.name}.{image_format or own_format(bracket, bits)}"))
    return jobs


def own_format(bracket: Bracket, bits: int) -> str:
    """The format of the bracket's photos (TIFF for RAW files and 32-bit float); PNG for JPEG photos fused to 16 bits."""
    first = bracket.exposures[0]
    own = "tif" if is_raw_file(first) or bits == 32 else _OWN_FORMAT[first.suffix.lower()]
    return "png" if own == "jpg" and bits > 8 else own


def fuse_in_turn(fuser: Fuser, device: torch.device, resolved: FuserOptions, bits: int,
                 todo: Iterable[Job]) -> Iterator[tuple[Job, str | None]]:
    """Each job fused in this process in turn, the next one's photos read in a thread meanwhile (decoders and
    torch release the GIL); yields each job and why it failed (None: it did not)."""
    queue = iter(todo)
    reads: deque = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusionkit-read") as reader:
        def read_ahead(count: int) -> None:
            for job in islice(queue, max(0, count - len(reads))):
                reads.append((job, reader.submit(read_bracket, fuser, job.bracket.exposures, resolved.steps, job.bracket.name)))

        read_ahead(1)
        try:
            while reads:
                job, exposures = reads.popleft()
                read_ahead(READ_AHEAD)
                yield job, attempt(lambda: fuse_exposures(fuser, exposures.result(), job.output, device=device, bits=bits))
        finally:
            for _, pending in reads:
                pending.cancel()


def fuse_in_processes(options: FuserOptions, bits: int, todo: list[Job], workers: int) -> Iterator[tuple[Job, str | None]]:
    """The jobs shared among ``workers`` processes (started afresh: 'spawn'), each with its own Fuser and
    ``threads // workers`` CPU threads; yields each job as it ends and why it failed (None: it did not)."""
    workers = min(workers, len(todo))
    share = replace(options, threads=max(1, (options.threads or torch.get_num_threads()) // workers))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_leave_interrupts_to_the_parent) as pool:
        futures = {pool.submit(fuse_job, share, bits, job): job for job in todo}
        try:
            for future in as_completed(futures):
                try:
                    why = future.result()
                except BrokenProcessPool:
                    why = "a worker process ended abruptly (killed, or out of memory)"
                yield futures[future], why
        finally:
            for future in futures:
                future.cancel()


def fuse_job(options: FuserOptions, bits: int, job: Job) -> str | None:
    """One job in a worker (a process or a Dask worker) with its process's Fuser; why it failed, or None."""
    fuser, device = process_fuser(options)
    return attempt(lambda: fuse_bracket(fuser, job.bracket.exposures, job.output, device=device, bits=bits,
                                               steps=options.steps, label=job.bracket.name))


_built: dict[FuserOptions, tuple[Fuser, torch.device]] = {}
_building = threading.Lock()


def process_fuser(options: FuserOptions) -> tuple[Fuser, torch.device]:
    """The Fuser ``options`` name, built once per process (the last one kept: a worker fuses with one)."""
    with _building:
        if options not in _built:
            _built.clear()
            _built[options] = options.build()
        return _built[options]


def attempt(work: Callable[[], object]) -> str | None:
    """Run ``work``; None, or why it failed (:func:`reason`): one bracket's failure never stops the batch, Ctrl-C does."""
    try:
        work()
    except Exception as exc:  # any failure is this bracket's alone
        return reason(exc)
    return None


def reason(exc: BaseException) -> str:
    """Why a bracket failed, in one line: a FusionkitError's message (parameters still marked for the command line
    to spell), else the exception's type and first line."""
    text = message_template(exc) if isinstance(exc, FusionkitError) else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _leave_interrupts_to_the_parent() -> None:
    """Workers ignore Ctrl-C: the parent stops handing out brackets and lets the running ones finish their write."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
