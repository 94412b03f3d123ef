"""Fit inference to the machine: threads, memory reuse, and the dtype and memory layout it runs fastest.

bf16 is used only where the hardware computes it natively and a short measurement shows it is
faster: on a CPU without AVX-512 BF16 or AMX, bf16 autocast is several times slower than float32.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import FusionkitError, param

#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Side of the probe image the CPU settings are timed on: large enough to be representative, small
#: enough that trying every candidate costs a fraction of a second.
PROBE_SIDE = 128
#: Timed runs per candidate, the fastest counting: one run can be slowed by other work on the machine, and a
#: wrong verdict is remembered (a 9-exposure bracket once ran 1.6x slower in float32 for it).
PROBE_RUNS = 3


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back (Linux; returns whether it applied).

    Fusing makes many short-lived buffers of a few megabytes; by default each comes back from the
    system as fresh pages, whose faults cost more than the arithmetic on a small photo (Mertens on a
    0.25-megapixel pair measured 18 ms against 10 ms). Up to 1 GB freed is kept; blocks up to 32 MB
    come from the reusable heap.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20))
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads (``None``: torch's default, one per physical core); returns the count."""
    if threads is not None:
        if threads < 1:
            raise FusionkitError(f"{param('threads')} {threads}: give 1 or more")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cpu_description() -> str:
    """The CPU's model and the vector extensions torch can use on it, for speed reports."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}; {', '.join(cpu_features()) or 'no AVX'}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def cpu_features() -> list[str]:
    """Which of AVX2, AVX-512, AVX-512 BF16 and AMX this CPU has, as torch sees them."""
    checks = {"AVX2": "_is_avx2_supported", "AVX-512": "_is_avx512_supported",
              "AVX-512 BF16": "_is_avx512_bf16_supported", "AMX": "_is_amx_tile_supported"}
    return [name for name, check in checks.items() if getattr(torch.cpu, check, lambda: False)()]


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA with bf16 support, AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(feature in cpu_features() for feature in ("AVX-512 BF16", "AMX"))
    return False


@dataclass(frozen=True)
class Precision:
    """How a network runs: autocast dtype (``None``: float32) and whether in channels_last layout."""

    dtype: torch.dtype | None
    channels_last: bool
    reason: str

    def apply(self, model: nn.Module) -> nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)


#: The one precision vocabulary of ``fuse`` and ``bench``: auto, plain float32, or bf16 / fp16 autocast.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device`` without measuring (the bench's rule): auto is bf16 on
    CUDA and float32 elsewhere; fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise FusionkitError(f"{param('precision')} {precision}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise FusionkitError(f"{param('precision')} fp16 needs CUDA; on this {device.type} use bf16 or fp32")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def pick_precision(model: nn.Module, device: torch.device, channels: int, requested: str = "auto") -> Precision:
    """The fastest safe way to run ``model`` here (``requested``: ``auto``, or force ``fp32`` / ``bf16`` / ``fp16``).

    CUDA: bf16 autocast where supported, channels_last. CPU: float32 in either layout, plus bf16 if
    the CPU has it natively, each timed on a small probe input of ``channels`` channels; the
    verdict is remembered per CPU, torch version and network in the user's cache folder.
    """
    if requested not in PRECISIONS:
        raise FusionkitError(f"{param('precision')} {requested}: use one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision(None, device.type == "cuda", "float32, as asked")
    if requested == "fp16":
        return Precision(autocast_dtype("fp16", device), True, "fp16, as asked")
    if requested == "bf16":
        if device.type == "cpu" and not has_native_bf16(device):
            warnings.warn("this CPU has no native bf16 (AVX-512 BF16 or AMX): bf16 will be slower than float32")
        return Precision(torch.bfloat16, device.type in ("cuda", "cpu"), "bf16, as asked")
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return Precision(torch.bfloat16 if bf16 else None, True, "CUDA" + (" with bf16" if bf16 else ""))
    if device.type != "cpu":
        return Precision(None, False, f"{device.type}: float32")
    candidates = [Precision(None, False, "float32"), Precision(None, True, "float32 channels_last")]
    if has_native_bf16(device):
        candidates.append(Precision(torch.bfloat16, True, "bf16 channels_last"))
    key = f"{cpu_description()} | {_signature(model)} | {channels} channels | best of {PROBE_RUNS}"
    remembered = _read_cache().get(key)
    if remembered in [c.reason for c in candidates]:
        best = next(c for c in candidates if c.reason == remembered)
        return Precision(best.dtype, best.channels_last, f"{best.reason}: fastest here when last measured")
    probe = torch.rand(1, channels, PROBE_SIDE, PROBE_SIDE)
    timings = {candidate: _time(model, probe, candidate, device) for candidate in candidates}
    best = min(timings, key=timings.get)
    _write_cache(key, best.reason)
    return Precision(best.dtype, best.channels_last, f"{best.reason}: fastest on a {PROBE_SIDE}px probe")


def cache_file() -> Path:
    """Where measured choices are kept: ``$XDG_CACHE_HOME/fusionkit`` (default ``~/.cache/fusionkit``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fusionkit" / "precision.json"


def _signature(model: nn.Module) -> str:
    """What decides a network's speed profile: its class and its parameters' shapes."""
    shapes = ",".join("x".join(map(str, p.shape)) for p in model.parameters())
    return f"{type(model).__name__}:{hashlib.sha1(shapes.encode()).hexdigest()[:12]}"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, choice: str) -> None:
    """Remember a choice; a cache that cannot be written only means measuring again next time."""
    data = {**_read_cache(), key: choice}
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file().with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, cache_file())
    except OSError:
        pass


@torch.inference_mode()
def _time(model: nn.Module, probe: torch.Tensor, precision: Precision, device: torch.device) -> float:
    """The fastest of ``PROBE_RUNS`` timed runs after a warm-up (the layout change is undone afterwards)."""
    precision.apply(model)
    x = probe.to(memory_format=torch.channels_last) if precision.channels_last else probe
    with precision.autocast(device):
        model(x)
        elapsed = []
        for _ in range(PROBE_RUNS):
            start = time.perf_counter()
            model(x)
            elapsed.append(time.perf_counter() - start)
    model.to(memory_format=torch.contiguous_format)
    return min(elapsed)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed allocation: MemoryError, or torch's RuntimeError for the CPU, CUDA or MPS."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )
