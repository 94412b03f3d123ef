"""The fast inference path: guided upsampling of weight maps, the work-size pipeline, precision and threads.

A weight-map student looks at the photos scaled to ``work_size``; its logits come back to full
resolution by the fast guided filter and the photos are blended at full resolution. These tests pin
the guided filter to kornia's, the fast path to the full-resolution one (and an untrained student to
Mertens), the hardware choices to what the machine allows, and the ``fuse`` options to one-line errors.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fusionkit
import fusionkit.inference.hardware as hardware
import fusionkit.inference.pipeline as pipeline
from fusionkit.data.io import write_image
from fusionkit.errors import FusionkitError
from fusionkit.inference.fuse import DEFAULT_WORK_SIZE
from fusionkit.inference.guided import guided_upsample
from fusionkit.inference.hardware import Precision, cpu_description, cpu_features, has_native_bf16, pick_precision, set_threads
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.plugins import get_registry
from fusionkit.runs.checkpoint import make_recipe, save_model
from test_cli_reliability import assert_one_line_error, invoke


# --- guided_upsample -----------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [1, 2])
def test_guided_upsample_at_the_same_size_is_kornias_guided_blur_per_channel(radius):
    """With guide at the working size, guided_upsample equals kornia's guided_blur channel by channel (1e-5)."""
    kornia_filters = pytest.importorskip("kornia.filters")
    generator = torch.Generator().manual_seed(radius)
    maps = torch.randn(2, 3, 10, 13, generator=generator)
    guide = torch.rand(2, 3, 10, 13, generator=generator)
    eps = 1e-2
    got = guided_upsample(maps, guide, guide, radius=radius, eps=eps)
    assert got.shape == maps.shape
    for c in range(maps.shape[1]):
        expected = kornia_filters.guided_blur(guide[:, c : c + 1], maps[:, c : c + 1], kernel_size=2 * radius + 1, eps=eps)
        torch.testing.assert_close(got[:, c : c + 1], expected, atol=1e-5, rtol=0, msg=f"channel {c}")


def _transition_width(row: torch.Tensor) -> int:
    """Pixels strictly between 10% and 90% of a 0 -> 1 step: 0 for a perfectly sharp edge."""
    return int(((row > 0.1) & (row < 0.9)).sum())


@pytest.mark.parametrize("transpose", [False, True], ids=["vertical-edge", "horizontal-edge"])
def test_guided_upsample_keeps_a_step_edge_sharp_where_bilinear_blurs_it(transpose):
    """A low-resolution step map follows a sharp full-resolution guide: far sharper than bilinear upsampling."""
    height, width, factor = 48, 64, 4
    guide = torch.full((1, 1, height, width), 0.2)
    guide[..., width // 2 :] = 0.8
    ideal = (guide > 0.5).float()
    if transpose:
        guide, ideal = guide.transpose(-2, -1).contiguous(), ideal.transpose(-2, -1).contiguous()
    small_size = (guide.shape[-2] // factor, guide.shape[-1] // factor)
    # As the pipeline makes its guides: an antialiased downscale of the full-resolution luma.
    guide_small = F.interpolate(guide, size=small_size, mode="bilinear", antialias=True, align_corners=False)
    step_small = (guide_small > 0.5).float()
    guided = guided_upsample(step_small, guide_small, guide)
    bilinear = F.interpolate(step_small, size=guide.shape[-2:], mode="bilinear", align_corners=False)
    assert guided.shape == guide.shape
    if transpose:
        guided, bilinear, ideal = (t.transpose(-2, -1) for t in (guided, bilinear, ideal))
    rows = range(guided.shape[-2])
    guided_width = max(_transition_width(guided[0, 0, r]) for r in rows)
    bilinear_width = min(_transition_width(bilinear[0, 0, r]) for r in rows)
    assert guided_width <= 1 and bilinear_width >= 3, (guided_width, bilinear_width)
    band = slice(width // 2 - 4, width // 2 + 4)  # the edge's neighbourhood, where the upsamplers differ
    guided_error = (guided - ideal)[..., band].abs().max().item()
    bilinear_error = (bilinear - ideal)[..., band].abs().max().item()
    assert guided_error < 0.5 * bilinear_error, (guided_error, bilinear_error)


def test_guided_upsample_of_zero_maps_is_zero():
    """Zero logits stay exactly zero through the guided upsampling (an untrained head is the prior exactly)."""
    guide = torch.rand(1, 2, 40, 52, generator=torch.Generator().manual_seed(3))
    guide_small = F.interpolate(guide, size=(10, 13), mode="bilinear", antialias=True, align_corners=False)
    out = guided_upsample(torch.zeros(1, 2, 10, 13), guide_small, guide)
    assert out.shape == (1, 2, 40, 52) and torch.equal(out, torch.zeros_like(out))


# --- fuse_with_model and fuse_at_work_size -------------------------------------------------------


def _smooth_exposures(height=96, width=128, seed=0) -> torch.Tensor:
    """A random smooth scene (1, 2, 3, H, W) as an under- and an over-exposure, in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, height // 8, width // 8, generator=generator)
    scene = F.interpolate(base, size=(height, width), mode="bilinear", align_corners=False)
    return torch.stack([scene * 0.5, scene * 1.6], dim=1).clamp(0, 1)


def _student(head: str | None = None, perturb: float = 0.0, seed: int = 0, **options) -> nn.Module:
    """A tiny untrained se_strip student (more preset ``options`` if given); ``perturb`` sets random weights in the head's last conv."""
    torch.manual_seed(seed)
    options = {"width": 8, **options} if head is None else {"width": 8, "head": head, **options}
    model = fusionkit.create("student", "se_strip", **options).eval()
    if perturb:
        last = model.head.reconstruct[-1]
        with torch.no_grad():
            last.weight.copy_(perturb * torch.randn(last.weight.shape, generator=torch.Generator().manual_seed(seed + 1)))
    return model


@pytest.fixture
def fast_path_calls(monkeypatch) -> list[int]:
    """Records each call of fuse_at_work_size (its work size), so a test knows which path ran."""
    calls: list[int] = []
    original = pipeline.fuse_at_work_size

    def spy(model, exposures, color, work_size, precision=None):
        calls.append(work_size)
        return original(model, exposures, color, work_size, precision)

    monkeypatch.setattr(pipeline, "fuse_at_work_size", spy)
    return calls


def test_untrained_weight_student_through_the_fast_path_is_mertens(fast_path_calls):
    """An untrained weight-map student at work_size 48 fuses a 96x128 bracket exactly like `mertens` (1e-4)."""
    model = _student()
    assert model.produces == "weights"
    exposures = _smooth_exposures()
    fused = fuse_with_model(model, exposures, "rgb", work_size=48)
    assert fast_path_calls == [48]
    expected = fusionkit.create("method", "mertens")(exposures)
    assert fused.shape == expected.shape == (1, 3, 96, 128)
    torch.testing.assert_close(fused, expected, atol=1e-4, rtol=0)


def test_trained_like_weight_student_fast_path_is_close_to_full_resolution(fast_path_calls):
    """With a perturbed head, work_size 64 and full resolution fuse a 96x128 bracket alike (mean abs < 0.02)."""
    model = _student(perturb=0.2)
    exposures = _smooth_exposures(seed=1)
    fast = fuse_with_model(model, exposures, "rgb", work_size=64)
    full = fuse_with_model(model, exposures, "rgb", work_size=None)
    assert fast_path_calls == [64]
    assert fast.shape == full.shape == (1, 3, 96, 128)
    assert fast.dtype == torch.float32 and torch.isfinite(fast).all()
    assert fast.min() >= 0 and fast.max() <= 1
    difference = (fast - full).abs().mean().item()
    assert difference < 0.02, difference
    # The perturbation matters (the student is not just Mertens), and the fast path keeps most of it.
    learned = (full - fusionkit.create("method", "mertens")(exposures)).abs().mean().item()
    assert learned > 1e-3, learned
    assert difference < 0.5 * learned, (difference, learned)


def test_pixel_regressing_student_ignores_work_size(fast_path_calls):
    """A kd_upsample student (produces "image") gives identical output with and without work_size."""
    model = _student(head="kd_upsample")
    assert model.produces == "image"
    exposures = _smooth_exposures(seed=2)
    with_work_size = fuse_with_model(model, exposures, "rgb", work_size=48)
    without = fuse_with_model(model, exposures, "rgb", work_size=None)
    assert fast_path_calls == []
    assert with_work_size.shape == (1, 3, 96, 128)
    assert torch.equal(with_work_size, without)


@pytest.mark.parametrize("work_size", [56, 64, 500])
def test_images_not_larger_than_work_size_take_the_full_path(fast_path_calls, work_size):
    """A 40x56 bracket with work_size >= 56 is fused at full resolution: identical to work_size=None."""
    model = _student(perturb=0.2)
    exposures = _smooth_exposures(40, 56, seed=3)
    fused = fuse_with_model(model, exposures, "rgb", work_size=work_size)
    assert fast_path_calls == []
    assert torch.equal(fused, fuse_with_model(model, exposures, "rgb", work_size=None))


@pytest.mark.parametrize("work_size", [64, None])
def test_bf16_precision_runs_and_stays_close_to_float32(work_size):
    """precision=Precision(bfloat16, channels_last) runs and stays within 0.01 mean abs of float32."""
    model = _student(perturb=0.2)
    exposures = _smooth_exposures(seed=4)
    fp32 = fuse_with_model(model, exposures, "rgb", work_size=work_size)
    bf16 = fuse_with_model(model, exposures, "rgb", work_size=work_size, precision=Precision(torch.bfloat16, True, "x"))
    assert bf16.shape == fp32.shape and bf16.dtype == torch.float32
    assert bf16.min() >= 0 and bf16.max() <= 1
    assert (bf16 - fp32).abs().mean().item() < 0.01


def test_fast_path_does_not_modify_the_exposures():
    """fuse_with_model on the fast path leaves the caller's exposures unchanged."""
    model = _student(perturb=0.2)
    exposures = _smooth_exposures(seed=5)
    saved = exposures.clone()
    fuse_with_model(model, exposures, "rgb", work_size=48)
    assert torch.equal(exposures, saved)


# --- hardware: precision, threads, CPU description -----------------------------------------------


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    """XDG_CACHE_HOME in a temporary folder, so no test reads or writes the user's precision cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_bf16(monkeypatch):
    """A CPU without native bf16, whatever this machine has."""
    monkeypatch.setattr(hardware, "has_native_bf16", lambda device: False)


@pytest.fixture
def restore_threads():
    """Put torch's intra-op thread count back after the test."""
    threads = torch.get_num_threads()
    yield threads
    torch.set_num_threads(threads)


def _probe_model() -> nn.Module:
    """A cheap network taking 6 channels (two RGB exposures), for precision timing."""
    return nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()


def test_cache_file_lives_under_xdg_cache_home(cache_home):
    """The precision cache is $XDG_CACHE_HOME/fusionkit/precision.json."""
    assert hardware.cache_file() == cache_home / "fusionkit" / "precision.json"


def test_auto_precision_on_a_cpu_without_bf16_is_float32_and_is_cached(cache_home, no_bf16, monkeypatch):
    """Without native bf16, auto picks a float32 precision (bf16 never timed), caches it, and reuses it untimed."""
    timed: list[Precision] = []
    original_time = hardware._time

    def recording_time(model, probe, precision, device):
        timed.append(precision)
        return original_time(model, probe, precision, device)

    monkeypatch.setattr(hardware, "_time", recording_time)
    model, cpu = _probe_model(), torch.device("cpu")
    first = pick_precision(model, cpu, 6)
    assert first.dtype is None
    assert timed and all(p.dtype is None for p in timed)
    cached = json.loads((cache_home / "fusionkit" / "precision.json").read_text())
    assert len(cached) == 1
    (key, verdict), = cached.items()
    assert "6 channels" in key and torch.__version__ in key
    assert verdict in ("float32", "float32 channels_last") and first.reason.startswith(verdict)

    def must_not_time(*args, **kwargs):
        raise AssertionError("pick_precision timed again instead of reading its cache")

    monkeypatch.setattr(hardware, "_time", must_not_time)
    second = pick_precision(model, cpu, 6)
    assert (second.dtype, second.channels_last) == (first.dtype, first.channels_last)
    assert "when last measured" in second.reason


def test_auto_precision_never_picks_bf16_without_native_support_even_if_it_times_fastest(cache_home, no_bf16, monkeypatch):
    """Even a timer that favours bf16 cannot make auto choose it on a CPU without native bf16."""
    monkeypatch.setattr(hardware, "_time", lambda model, probe, precision, device: 0.0 if precision.dtype else 1.0)
    assert pick_precision(_probe_model(), torch.device("cpu"), 6).dtype is None


def test_a_stale_cache_entry_is_measured_again(cache_home, no_bf16, monkeypatch):
    """A cached verdict that is no longer a candidate (bf16 on a CPU without it) is ignored and re-timed."""
    model, cpu = _probe_model(), torch.device("cpu")
    pick_precision(model, cpu, 6)
    path = cache_home / "fusionkit" / "precision.json"
    path.write_text(json.dumps({key: "bf16 channels_last" for key in json.loads(path.read_text())}))
    timed = []
    monkeypatch.setattr(hardware, "_time", lambda m, p, precision, d: timed.append(precision) or 1.0)
    assert pick_precision(model, cpu, 6).dtype is None
    assert timed


def test_requested_fp32_and_bf16_are_forced_without_timing(cache_home, no_bf16, monkeypatch):
    """requested="fp32" gives float32 and "bf16" gives bfloat16 (warning on a CPU without it), neither timed."""
    monkeypatch.setattr(hardware, "_time", lambda *a, **k: (_ for _ in ()).throw(AssertionError("timed")))
    model, cpu = _probe_model(), torch.device("cpu")
    fp32 = pick_precision(model, cpu, 6, requested="fp32")
    assert fp32.dtype is None and not fp32.channels_last
    with pytest.warns(UserWarning, match="no native bf16"):
        bf16 = pick_precision(model, cpu, 6, requested="bf16")
    assert bf16.dtype == torch.bfloat16
    assert not (cache_home / "fusionkit" / "precision.json").exists()


@pytest.mark.parametrize("requested", ["fp16", "BF16", "", "float32"])
def test_unknown_requested_precision_raises_fusionkit_error(cache_home, requested):
    """An unknown precision name is a FusionkitError naming --precision."""
    with pytest.raises(FusionkitError, match="^precision "):
        pick_precision(_probe_model(), torch.device("cpu"), 6, requested=requested)


def test_set_threads_refuses_zero_and_sets_one(restore_threads):
    """set_threads(0) raises FusionkitError naming --threads; set_threads(1) sets torch to one thread."""
    with pytest.raises(FusionkitError, match="^threads "):
        set_threads(0)
    with pytest.raises(FusionkitError, match="^threads "):
        set_threads(-2)
    assert torch.get_num_threads() == restore_threads
    torch.set_num_threads(2)  # start from more than one, so setting one is observable
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    assert set_threads(None) == 1


def test_keep_freed_memory_applies_on_linux_glibc():
    """The CLI's allocator setting takes on Linux with glibc, says False elsewhere, and fusing still works after it."""
    script = (
        "import torch, fusionkit\n"
        "from fusionkit.inference.hardware import keep_freed_memory\n"
        "applied = keep_freed_memory()\n"
        "fused = fusionkit.create('method', 'mertens')(torch.rand(1, 2, 3, 40, 50))\n"
        "print(applied, tuple(fused.shape))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert result.stdout.split(maxsplit=1) == [str(glibc), "(1, 3, 40, 50)\n"]


def test_cpu_description_names_torch_version_and_thread_count():
    """cpu_description() names torch's version and the current thread count."""
    text = cpu_description()
    assert f"torch {torch.__version__}" in text
    assert f"{torch.get_num_threads()} threads" in text


def test_cpu_features_and_native_bf16_are_consistent():
    """cpu_features lists only known extensions; has_native_bf16 follows them on CPU and is False on meta."""
    features = cpu_features()
    assert set(features) <= {"AVX2", "AVX-512", "AVX-512 BF16", "AMX"}
    assert has_native_bf16(torch.device("cpu")) == any(f in features for f in ("AVX-512 BF16", "AMX"))
    assert has_native_bf16(torch.device("meta")) is False


# --- fusionkit fuse --work-size / --precision / --threads ----------------------------------------


@pytest.fixture
def photos(tmp_path, monkeypatch, cache_home) -> Path:
    """A folder with two 36x52 photos and an untrained weight-map student checkpoint (student.*)."""
    with warnings.catch_warnings():  # build the registry first, so no CLI call below sees its warnings
        warnings.simplefilter("ignore")
        get_registry()
    monkeypatch.chdir(tmp_path)
    ramp = torch.linspace(0, 1, 52).expand(3, 36, 52)
    for name, gain in (("under.png", 0.5), ("over.png", 1.5)):
        write_image(name, (ramp * gain).clamp(0, 1))
    model = _student(perturb=0.2)
    save_model(tmp_path / "student", model, make_recipe("student", "se_strip", {"width": 8}, color="rgb", role="student"))
    return tmp_path


FUSE = ["fuse", "under.png", "over.png", "--checkpoint", "student.safetensors"]


@pytest.mark.parametrize(
    "args, text",
    [
        (["--work-size", "8"], "--work-size"),
        (["--work-size", "-1"], "--work-size"),
        (["--threads", "0"], "--threads"),
    ],
    ids=["work-size-8", "work-size-negative", "threads-0"],
)
def test_fuse_bad_work_size_or_threads_is_a_one_line_error_and_writes_nothing(photos, restore_threads, args, text):
    """--work-size 8 / --threads 0 exit non-zero with one line naming the option, and write no file."""
    result = invoke(*FUSE, "-o", "fused.png", *args)
    assert result.exit_code != 0
    assert_one_line_error(result, text)
    assert not (photos / "fused.png").exists()
    assert torch.get_num_threads() == restore_threads


def test_fuse_default_and_work_size_0_write_the_same_file_for_a_weight_student(photos, restore_threads):
    """The default work size and --work-size 0 both write a fused image (identical: the photo is small)."""
    from fusionkit.data.io import read_image

    assert DEFAULT_WORK_SIZE >= 52
    default = invoke(*FUSE, "-o", "default.png")
    assert default.exit_code == 0, default.output
    full = invoke(*FUSE, "-o", "full.png", "--work-size", "0", "--precision", "fp32", "--threads", "1")
    assert full.exit_code == 0, full.output
    a, b = read_image(photos / "default.png"), read_image(photos / "full.png")
    assert a.shape == b.shape == (3, 36, 52)
    assert torch.equal(a, b)


def test_fuse_small_work_size_runs_the_fast_path_and_writes_a_file(photos, restore_threads, fast_path_calls):
    """--work-size 32 on a 52-pixel-wide photo runs the network at 32 pixels and writes the fused image."""
    result = invoke(*FUSE, "-o", "fast.png", "--work-size", "32", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert fast_path_calls == [32]
    assert (photos / "fast.png").exists()


def test_one_precision_vocabulary_for_fuse_and_bench():
    """fuse and bench take the same names; fp16 is refused off CUDA in one line naming the parameter."""
    from fusionkit.inference.hardware import PRECISIONS, autocast_dtype

    cpu = torch.device("cpu")
    assert PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    assert [autocast_dtype(name, cpu) for name in ("auto", "fp32", "bf16")] == [None, None, torch.bfloat16]
    with pytest.raises(FusionkitError, match="^precision fp16 needs CUDA"):
        autocast_dtype("fp16", cpu)
