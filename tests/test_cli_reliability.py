"""The command line never loses, overwrites or silently swaps a user's files (issue #12).

Each bad input gives exit code 1 (Ctrl-C: 130), one line on stderr, no traceback and no file
changed; checkpoints are loaded by the name given; one process owns a run folder at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import fusionkit
from fusionkit.cli.main import cli
from fusionkit.data.io import write_image
from fusionkit.plugins import build_registry, get_registry, set_registry
from fusionkit.runs.checkpoint import paths, read_recipe
from fusionkit.training.config import make_config
from fusionkit.training.engine import train
from tests.fake_exposure_data import make_fake_brackets, make_fake_dataset

#: The smallest run that trains both stages: a few seconds on a 2-core CPU.
TINY = {"width": 4, "crop": 32, "batch_size": 2, "teacher_steps": 2, "student_steps": 2, "log_every": 1, "device": "cpu"}
TINY_ARGS = ["--width", "4", "--crop", "32", "--batch-size", "2", "--teacher-steps", "2", "--student-steps", "2", "--device", "cpu"]
ROLES = ("student", "teacher")
#: Tests of run folders train the teacher only: the cheaper stage, written and logged the same way.
TEACHER_ONLY = ["--stage", "teacher", "--log-every", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny dataset: two training scenes, one validation and one test scene, 48 px."""
    with warnings.catch_warnings():  # build the registry here, so no CLI call below sees its warnings
        warnings.simplefilter("ignore")
        get_registry()
    return make_fake_dataset(tmp_path_factory.mktemp("data") / "fake", train=2, val=1, test=1, size=48)


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    """Real-bracket layout without reference images: one test scene of two exposures."""
    return make_fake_brackets(tmp_path_factory.mktemp("bare"), {"test": 1}, exposures=2, reference=False)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """A trained run folder (teacher and student)."""
    return train(make_config({**TINY, "data": str(data), "run_dir": str(tmp_path_factory.mktemp("run") / "tiny")}))


@pytest.fixture
def work(run, tmp_path, monkeypatch) -> Path:
    """The current folder of a user: two photos, a trained run in runs/, an existing output, a file where a folder is expected."""
    monkeypatch.chdir(tmp_path)
    for name, gain in (("under.jpg", 0.5), ("over.jpg", 1.5)):
        write_image(name, (torch.linspace(0, 1, 52).expand(3, 36, 52) * gain).clamp(0, 1))
    write_image("small.jpg", torch.rand(3, 20, 30))
    write_image("existing.png", torch.rand(3, 36, 52))
    write_image("protected.png", torch.rand(3, 36, 52))
    Path("protected.png").chmod(0o444)
    copy_run(run, tmp_path / "runs" / "tiny")
    Path("blocker").write_text("a file, not a folder\n")
    Path("empty").mkdir()
    Path("sub").mkdir()
    Path("link.jpg").symlink_to("under.jpg")
    return tmp_path


def copy_run(run: Path, to: Path) -> Path:
    """The run's config and checkpoints (not its logs) in a new folder."""
    to.mkdir(parents=True)
    for name in ("config.json", *(f"{role}{ending}" for role in ROLES for ending in (".safetensors", ".json"))):
        shutil.copy(run / name, to)
    return to


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, text: str, code: int = 1) -> str:
    """Exit ``code``, exactly one line on stderr (containing ``text``), no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` with its size, mtime, mode and content hash."""
    found = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
        found[str(path.relative_to(root))] = (path.is_dir(), stat.st_size, stat.st_mtime_ns, stat.st_mode, digest)
    return found


@pytest.fixture
def spies(monkeypatch) -> list[str]:
    """Records when fuse reads the photos and when bench starts evaluating: the work a bad request must never reach."""
    import fusionkit.evaluation.bench as bench_module
    import fusionkit.inference.fuse as fuse_module

    calls = []
    for module, name in ((fuse_module, "read_prepared"), (bench_module, "run_bench")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    return calls


#: The photos are flat ramps with nothing to align by: alignment would only warn.
FUSE = ["fuse", "under.jpg", "over.jpg", "--align", "none"]
BENCH = ["bench", "--checkpoint", "runs/tiny", "--methods", "", "--no-speed", "--max-scenes", "1"]
TRAIN = ["train", "--run-dir", "r", *TINY_ARGS]

#: (id, arguments ("DATA" is the dataset, "BARE" brackets without references), text of the one-line error, refused before any work)
BAD_INPUTS = [
    ("fuse-output-is-an-input", [*FUSE, "-o", "under.jpg", "--method", "mean"], "-o under.jpg is the input under.jpg", True),
    ("fuse-output-links-to-an-input", [*FUSE, "-o", "link.jpg", "--method", "mean"], "-o link.jpg is the input under.jpg", True),
    ("fuse-output-spells-an-input", [*FUSE, "-o", "sub/../over.jpg", "--method", "mean"], "is the input over.jpg", True),
    ("fuse-output-folder-is-a-file", [*FUSE, "-o", "blocker/fused.png", "--method", "mean"], "blocker is not a folder", True),
    ("fuse-device-gpu", [*FUSE, "-o", "f.png", "--method", "mean", "--device", "gpu"], "--device gpu: not a device", True),
    ("fuse-tile-0", [*FUSE, "-o", "f.png", "--tile", "0"], "--tile must be a positive number of pixels, got 0", True),
    ("fuse-method-empty", [*FUSE, "-o", "f.png", "--method", ""], "no method named ''", True),
    ("fuse-bits-16-jpeg", [*FUSE, "-o", "f.jpg", "--bits", "16", "--method", "mean"], "JPEG is 8-bit only", True),
    ("fuse-tile-batch-0", [*FUSE, "-o", "f.png", "--tile", "32", "--tile-batch", "0"], "--tile-batch 0: give 1 or more tiles", True),
    ("fuse-overlap-negative", [*FUSE, "-o", "f.png", "--tile", "32", "--overlap", "-8"], "--overlap must not be negative, got -8", True),
    ("fuse-checkpoint-is-a-photo", [*FUSE, "-o", "f.png", "--checkpoint", "under.jpg"], "--checkpoint under.jpg: not a checkpoint", True),
    ("fuse-bad-extension", [*FUSE, "-o", "f.gif", "--method", "mean"], "use a .png, .jpg or .tif", True),
    ("fuse-method-typo", [*FUSE, "-o", "f.png", "--method", "mertnes"], "did you mean 'mertens'", True),
    ("fuse-sizes-differ", ["fuse", "under.jpg", "small.jpg", "-o", "f.png", "--method", "mean"], "differ in size", False),
    ("fuse-output-write-protected", [*FUSE, "-o", "protected.png", "--method", "mean"], "-o protected.png: the file is write-protected", True),
    ("fuse-missing-input", ["fuse", "under.jpg", "nope.jpg", "-o", "f.png", "--method", "mean"], "nope.jpg", False),
    ("bench-json-folder-is-a-file", [*BENCH, "--data", "DATA", "--json", "blocker/b.json"], "--json blocker/b.json", True),
    ("bench-csv-folder-is-a-file", [*BENCH, "--data", "DATA", "--csv", "blocker/b.csv"], "--csv blocker/b.csv", True),
    ("bench-markdown-folder-is-a-file", [*BENCH, "--data", "DATA", "--markdown", "blocker/b.md"], "--markdown blocker/b.md", True),
    ("bench-grid-folder-is-a-file", [*BENCH, "--data", "DATA", "--grid", "blocker/g.png"], "--grid blocker/g.png", True),
    ("bench-json-write-protected", [*BENCH, "--data", "DATA", "--json", "protected.png"], "--json protected.png: the file is write-protected", True),
    ("bench-device-gpu", [*BENCH, "--data", "DATA", "--device", "gpu"], "--device gpu: not a device", False),
    ("bench-checkpoint-is-a-photo", ["bench", "--data", "DATA", "--checkpoint", "under.jpg", "--methods", ""], "under.jpg: not a checkpoint", True),
    ("train-width-0", [*TRAIN, "--data", "DATA", "--width", "0"], "--width must be a positive integer, got 0", True),
    ("train-lr-nan", [*TRAIN, "--data", "DATA", "--lr", "nan"], "--lr must be a positive number, got nan", True),
    ("train-workers-negative", [*TRAIN, "--data", "DATA", "--workers", "-1"], "--workers must be 0", True),
    ("train-device-gpu", [*TRAIN, "--data", "DATA", "--device", "gpu"], "--device gpu: not a device", True),
    ("train-empty-data", [*TRAIN, "--data", "empty"], "empty", True),
    ("train-teacher-is-a-photo", [*TRAIN, "--data", "DATA", "--stage", "student", "--teacher-checkpoint", "under.jpg"], "--teacher-checkpoint under.jpg: not a checkpoint", True),
    ("train-run-dir-holds-a-run", ["train", "--run-dir", "runs/tiny", *TINY_ARGS, "--data", "DATA"], "already holds a run", True),
    ("bench-size-0", [*BENCH, "--data", "DATA", "--size", "0"], "--size must be a whole number >= 16, got 0", True),
    ("bench-batch-0", [*BENCH, "--data", "DATA", "--batch", "0"], "--batch must be a whole number >= 1, got 0", True),
    ("bench-iters-negative", [*BENCH, "--data", "DATA", "--iters", "-3"], "--iters must be a whole number >= 1, got -3", True),
    ("bench-warmup-negative", [*BENCH, "--data", "DATA", "--warmup", "-1", "--iters", "1"], "--warmup must be a whole number >= 0, got -1", True),
    ("bench-max-scenes-0", [*BENCH, "--data", "DATA", "--max-scenes", "0"], "--max-scenes must be a whole number >= 1, got 0", True),
    ("bench-max-scenes-negative", [*BENCH, "--data", "DATA", "--max-scenes", "-1"], "--max-scenes must be a whole number >= 1, got -1", True),
    ("bench-json-is-the-csv", [*BENCH, "--data", "DATA", "--json", "x.out", "--csv", "x.out"], "--json and --csv name the same file x.out", True),
    ("bench-psnr-without-reference", [*BENCH, "--data", "BARE", "--methods", "mean", "--metric", "psnr"], "metric psnr compares with a reference image", False),
    ("bench-grid-bmp", [*BENCH, "--data", "DATA", "--grid", "g.bmp"], "--grid g.bmp: the grid is written as PNG or JPEG", True),
    ("train-seed-negative", [*TRAIN, "--data", "DATA", "--seed", "-1"], "--seed must be a whole number from 0 to 2**63 - 1, got -1", True),
    ("train-seed-huge", [*TRAIN, "--data", "DATA", "--seed", str(2**70)], "--seed must be a whole number from 0 to 2**63 - 1", True),
    ("train-loss-option-unknown-loss", [*TRAIN, "--data", "DATA", "--loss-option", "mef_sim.space=rgb"], "--loss-option mef_sim.space: no loss term 'mef_sim'", True),
    ("train-prior-shift-not-a-number", [*TRAIN, "--data", "DATA", "--student-option", "prior_shift=abc"], "prior_shift must be a number, got 'abc'", True),
]


@pytest.mark.parametrize("args, text, up_front", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_exit_1_and_changes_no_file(work, data, bare, spies, args, text, up_front):
    before = snapshot(work)
    result = invoke(*[{"DATA": data, "BARE": bare}.get(a, a) for a in args])
    line = assert_one_line_error(result, text)
    assert line.startswith("Error: ")
    assert snapshot(work) == before
    if up_front:
        assert spies == [], "refused only after reading the photos or evaluating"


@pytest.fixture
def dotted(work) -> Path:
    """runs/tiny/student.best.safetensors: another model than runs/tiny/student.safetensors; best/student.safetensors: the same one."""
    tiny = work / "runs" / "tiny"
    weights = load_file(str(tiny / "student.safetensors"))
    best = {key: 0.9 * value + 0.1 if value.is_floating_point() else value for key, value in weights.items()}
    for folder, name in ((tiny, "student.best"), (work / "best", "student")):
        folder.mkdir(exist_ok=True)
        save_file(best, str(folder / f"{name}.safetensors"))
        shutil.copy(tiny / "student.json", folder / f"{name}.json")
    return tiny


def test_fuse_loads_a_checkpoint_name_with_extra_dots_as_given(dotted):
    fused = {}
    for name, checkpoint in (("plain", "runs/tiny/student.safetensors"), ("dotted", "runs/tiny/student.best.safetensors"), ("renamed", "best/student.safetensors")):
        assert invoke(*FUSE, "-o", f"{name}.png", "--checkpoint", checkpoint).exit_code == 0
        fused[name] = Path(f"{name}.png").read_bytes()
    assert fused["dotted"] == fused["renamed"] != fused["plain"]


def test_bench_loads_a_checkpoint_name_with_extra_dots_as_given(dotted, data, monkeypatch):
    import fusionkit.evaluation.bench as bench_module

    loaded = []
    monkeypatch.setattr(bench_module, "evaluate_quality", lambda candidates, *a, **k: loaded.extend(candidates) or [])
    result = invoke("bench", "--data", data, "--checkpoint", "runs/tiny/student.best.safetensors", "--methods", "", "--no-speed")
    assert result.exit_code == 0, result.output
    best = load_file(str(dotted / "student.best.safetensors"))
    assert all(torch.equal(value.cpu(), best[key]) for key, value in loaded[0].fuser.model.state_dict().items())


def test_train_loads_a_teacher_checkpoint_name_with_extra_dots_as_given(run, work, data):
    (work / "teachers").mkdir()
    for ending in (".safetensors", ".json"):  # only teacher.best.*: no teacher.safetensors to fall back on
        shutil.copy(run / f"teacher{ending}", work / "teachers" / f"teacher.best{ending}")
    result = invoke("train", "--stage", "student", "--teacher-checkpoint", "teachers/teacher.best.safetensors",
                    "--data", data, "--run-dir", "student_run", *TINY_ARGS)
    assert result.exit_code == 0, result.output
    assert read_recipe(work / "student_run" / "student")["complete"]


def test_two_new_runs_on_one_folder_one_is_refused(data, tmp_path, monkeypatch):
    """The second ``train`` starts while the first has checked the folder but written nothing yet."""
    from fusionkit.training.engine import Trainer

    run_dir, results = tmp_path / "shared", {}
    args = ["train", "--data", data, "--run-dir", run_dir, *TINY_ARGS, *TEACHER_ONLY]
    preflight = Trainer.preflight

    def start_second_run_first(trainer):
        if "second" not in results:
            results["second"] = "running"
            results["second"] = invoke(*args)
        preflight(trainer)

    monkeypatch.setattr(Trainer, "preflight", start_second_run_first)
    results["first"] = invoke(*args)
    codes = sorted(result.exit_code for result in results.values())
    assert codes == [0, 1], [r.output for r in results.values()]
    refused = next(result for result in results.values() if result.exit_code == 1)
    assert_one_line_error(refused, str(run_dir))
    assert_logged_once(run_dir)
    assert read_recipe(run_dir / "teacher")["complete"]


def test_a_run_folder_in_use_is_refused(data, tmp_path):
    """While a run trains, ``train --resume`` on its folder is refused and the run finishes untouched."""
    run_dir, seen = tmp_path / "busy", []

    def resume_meanwhile(stage, step, terms):
        if not seen:
            seen.append(invoke("train", "--resume", run_dir))

    train(make_config({**TINY, "stage": "teacher", "data": str(data), "run_dir": str(run_dir)}), on_step=resume_meanwhile)
    assert_one_line_error(seen[0], f"--run-dir {run_dir} is in use by another fusionkit train")
    assert_logged_once(run_dir)


def assert_logged_once(run_dir: Path, steps: int = 2) -> None:
    """log.jsonl and log.csv hold each step of the teacher stage exactly once."""
    records = [(r["stage"], r["step"]) for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())]
    assert records == [("teacher", step) for step in range(1, steps + 1)]
    rows = [tuple(row.split(",")[:3]) for row in (run_dir / "log.csv").read_text().splitlines()[1:]]
    assert len(rows) == len(set(rows)) and {(stage, int(step)) for stage, step, _ in rows} == set(records), rows


class SimulatedKill(BaseException):
    """Stops a run at once, as SIGKILL would (no checkpoint, no cleanup of the log)."""


def test_resume_after_a_kill_logs_each_step_once(data, tmp_path):
    run_dir = tmp_path / "killed"
    config = make_config({**TINY, "stage": "teacher", "data": str(data), "run_dir": str(run_dir), "teacher_steps": 4, "checkpoint_every": 2})

    def kill(stage, step, terms):
        if step == 3:  # a checkpoint at step 2, the log at step 3
            raise SimulatedKill

    with pytest.raises(SimulatedKill):
        train(config, on_step=kill)
    assert read_recipe(run_dir / "teacher")["step"] == 2
    train(None, resume=run_dir)
    assert_logged_once(run_dir, steps=4)


def test_a_failed_run_leaves_nothing_and_the_corrected_command_runs(data, tmp_path):
    """A run that fails before its first checkpoint (here on a corrupt photo) removes what it wrote: the
    folder it made, or what it added to a folder the user made; the same --run-dir then works."""
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    photo = sorted((broken / "training" / "GT_IMAGES").iterdir())[0]  # read by the first batch
    good = photo.read_bytes()
    photo.write_bytes(b"not a jpeg")
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine\n")
    assert_one_line_error(invoke("train", "--data", broken, "--run-dir", users, *TINY_ARGS, *TEACHER_ONLY), photo.name)
    assert [p.name for p in users.iterdir()] == ["notes.txt"]
    args = ["train", "--data", broken, "--run-dir", tmp_path / "runs" / "mine", *TINY_ARGS, *TEACHER_ONLY]
    assert_one_line_error(invoke(*args), photo.name)
    assert not (tmp_path / "runs").exists()
    photo.write_bytes(good)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert read_recipe(tmp_path / "runs" / "mine" / "teacher")["complete"]


def test_output_that_is_an_input_is_refused_and_another_is_replaced_keeping_its_mode(work):
    before = snapshot(work)
    assert_one_line_error(invoke(*FUSE, "-o", work / "under.jpg", "--method", "mean"), "is the input")
    assert snapshot(work) == before
    os.chmod("existing.png", 0o600)
    old = Path("existing.png").read_bytes()
    assert invoke(*FUSE, "-o", "existing.png", "--method", "mean").exit_code == 0
    assert Path("existing.png").read_bytes() != old
    assert Path("existing.png").stat().st_mode & 0o777 == 0o600


@pytest.fixture
def read_only(tmp_path):
    """A folder this process cannot write in (chmod, or chattr +i when running as root)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if os.access(folder, os.W_OK):
        immutable = shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if not immutable:
            pytest.skip("cannot make a folder read-only for this user")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_unwritable_output_folder_is_refused_before_the_work(work, data, read_only, spies):
    line = assert_one_line_error(invoke(*FUSE, "-o", read_only / "f.png", "--method", "mean"), f"cannot write in {read_only}")
    assert "-o" in line
    for option in ("--json", "--csv", "--markdown", "--grid"):
        assert_one_line_error(invoke(*BENCH, "--data", data, option, read_only / "out.x"), f"{option} {read_only / 'out.x'}")
    assert spies == [] and list(read_only.iterdir()) == []


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 9663676416 bytes."),
], ids=["cuda", "cpu"])
def test_out_of_memory_names_the_photo_size_and_suggests_tiles(work, monkeypatch, error):
    import fusionkit.inference.fuser as fuser_module

    def run_out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(fuser_module, "fuse_with_model", run_out_of_memory)
    line = assert_one_line_error(invoke(*FUSE, "-o", "f.png"), "out of memory")
    assert "52x36" in line and "--tile 512" in line
    line = assert_one_line_error(invoke(*FUSE, "-o", "f.png", "--tile", "32", "--overlap", "8"), "out of memory")
    assert "smaller --tile than 32" in line
    assert not Path("f.png").exists()


def test_ctrl_c_while_writing_exits_130_and_leaves_no_file(work, monkeypatch):
    import fusionkit.data.io as io_module

    def interrupted_encoder(tmp, *args):
        tmp.write_bytes(b"half a PNG")
        raise KeyboardInterrupt

    before = snapshot(work)
    monkeypatch.setattr(io_module, "_encode", interrupted_encoder)
    assert_one_line_error(invoke(*FUSE, "-o", "f.png", "--method", "mean"), "interrupted", code=130)
    assert snapshot(work) == before


def test_sigint_during_fuse_exits_130_with_one_line(work):
    """The installed entry point under a real SIGINT, while the photos are being read."""
    script = (
        "import sys, time\n"
        "import fusionkit.inference.fuse as f\n"
        "from fusionkit.cli.main import main\n"
        "def slow(paths, steps, **options):\n"
        "    print('reading', file=sys.stderr, flush=True)\n"
        "    time.sleep(60)\n"
        "f.read_prepared = slow\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "FUSIONKIT_LOAD_PLUGINS": "classic"}
    # A parent started in the background ignores SIGINT, and a child would inherit that: restore the default.
    process = subprocess.Popen([sys.executable, "-c", script, *FUSE, "-o", "f.png", "--method", "mean"],
                               stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stderr.readline().strip() == "reading"
    process.send_signal(signal.SIGINT)
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["fusionkit: interrupted"]
    assert not Path("f.png").exists()


def test_score_out_of_memory_is_one_line_naming_the_metric_and_size(work, monkeypatch):
    """A metric that cannot get its memory (a huge photo on a small machine) gives the size and what to try."""
    import fusionkit.evaluation.fusion_metrics as metrics_module

    def no_memory(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 9600000000 bytes")

    monkeypatch.setattr(metrics_module, "_gray_inputs", no_memory)
    result = invoke("score", "existing.png", "--inputs", "under.jpg", "over.jpg", "--metric", "qabf")
    line = assert_one_line_error(result, "out of memory computing qabf on 52x36 images (existing.png)")
    assert "downscaled copy" in line


def test_ctrl_c_while_the_commands_load_exits_130_with_one_line():
    """Ctrl-C during the first seconds (torch and the plugins importing) is exit 130 and one line, no traceback."""
    script = (
        "import builtins, sys\n"
        "real_import = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'torch':\n"
        "        raise KeyboardInterrupt\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "from fusionkit.cli import main\n"
        "main(['plugins'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == ["fusionkit: interrupted"]


def test_sigint_at_start_up_exits_130_with_one_line(tmp_path):
    """A real SIGINT a second after the installed command starts: Python is up by then (even on a loaded machine)
    and torch still loading."""
    command = Path(sys.executable).with_name("fusionkit")
    process = subprocess.Popen([str(command), "plugins"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        process.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
    stderr = process.stderr.read()
    assert process.wait(timeout=60) in (0, 130), stderr
    assert "Traceback" not in stderr
    if process.returncode == 130:
        assert [line for line in stderr.splitlines() if line.strip()] == ["fusionkit: interrupted"]


def test_tiled_fuse_prints_a_line_per_pass_when_stderr_is_no_terminal(work):
    result = invoke(*FUSE, "-o", "f.png", "--tile", "32", "--overlap", "8")
    assert result.exit_code == 0, result.output
    passes = [line for line in result.stderr.splitlines() if line.startswith("tiles, pass ")]
    assert passes and all(" tiles in " in line for line in passes), result.stderr


def test_plugins_shows_a_name_two_plugins_claim(restore_registry):
    class TwinA:
        @fusionkit.hookimpl
        def register_components(register):
            register("method", "twin", torch.nn.Identity, "first twin")

    class TwinB:
        @fusionkit.hookimpl
        def register_components(register):
            register("method", "twin", torch.nn.Identity, "second twin")

    with pytest.warns(fusionkit.errors.FusionkitWarning, match="registered by both"):
        set_registry(build_registry([TwinA, TwinB]))
    result = invoke("plugins", "--kind", "method")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.split()[1] == "twin")
    assert "TwinA" in row and "TwinB" in row and "CONFLICT" in row
    listing = {(r["kind"], r["name"]): r for r in json.loads(invoke("plugins", "--json").stdout)}
    assert listing[("method", "twin")]["conflict"] == ["TwinA", "TwinB"]
    assert listing[("method", "mean")]["conflict"] == []


def test_plain_bench_skips_a_method_two_plugins_claim_with_a_warning(restore_registry, work, data):
    class TwinA:
        @fusionkit.hookimpl
        def register_components(register):
            register("method", "twin", torch.nn.Identity, "first twin")

    class TwinB:
        @fusionkit.hookimpl
        def register_components(register):
            register("method", "twin", torch.nn.Identity, "second twin")

    with pytest.warns(fusionkit.errors.FusionkitWarning, match="registered by both"):
        set_registry(build_registry([TwinA, TwinB]))
    result = invoke("bench", "--data", str(data), "--no-speed", "--max-scenes", "1")
    assert result.exit_code == 0, result.output
    assert "warning: method twin is registered by more than one plugin and is skipped" in result.stderr
    assert "mertens" in result.stdout and "twin" not in result.stdout


def test_checkpoint_paths_keep_every_dot_but_the_last_suffix():
    assert paths("run/student.best.safetensors") == tuple(Path(f"run/student.best{e}") for e in (".safetensors", ".json", ".state.pt"))
    assert paths("run/student") == paths("run/student.safetensors")


def test_bench_grid_is_written_in_the_format_its_name_says(work, data):
    result = invoke(*BENCH, "--data", str(data), "--grid", "g.jpg")
    assert result.exit_code == 0, result.output
    assert Path("g.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, not PNG bytes under a .jpg name


def test_a_config_whose_losses_are_not_a_mapping_is_one_line(work, data):
    Path("c.yaml").write_text("losses: 5\n")
    assert_one_line_error(invoke(*TRAIN, "--data", data, "--config", "c.yaml"), "losses must map loss names to weights, got 5")


def test_float_pixels_above_one_are_clipped_with_a_warning_naming_the_file(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    import numpy as np

    from fusionkit.data.io import read_image
    from fusionkit.errors import FusionkitWarning

    path = tmp_path / "in_0_255.tif"
    tifffile.imwrite(path, np.full((8, 8, 3), 200.0, dtype=np.float32))
    with pytest.warns(FusionkitWarning, match="in_0_255.tif.*above 1"):
        image = read_image(path)
    assert float(image.max()) == 1.0
