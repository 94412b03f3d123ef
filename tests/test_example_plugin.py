"""End to end: install the example third-party plugins (docs/examples/) and use them.

``fusionkit-example-attention`` registers one attention block; ``fusionkit-example-kinds`` one
component of every kind, written from docs/plugins.md alone. Each goes into an isolated target
directory, never into the venv; the checks run in subprocesses with ``PYTHONPATH`` pointing there
first, exactly as an installed distribution is found.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import fusionkit
from fusionkit.plugins import LOAD_PLUGINS_ENV
from tests.fake_exposure_data import make_fake_dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
EXAMPLE = EXAMPLES / "fusionkit-example-attention"
DIST, VERSION, ENTRY_POINT, NAME = "fusionkit-example-attention", "0.1.0", "example_attention", "gated_spatial"
KINDS_DIST, KINDS_ENTRY_POINT = "fusionkit-example-kinds", "example_kinds"

pytestmark = pytest.mark.integration


def install(example: Path, tmp: Path) -> Path:
    """``example`` installed with pip into its own directory (built from a copy: no build/ left in docs/)."""
    source = shutil.copytree(
        example, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = tmp / "site"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--target", str(target), str(source)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return target


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return install(EXAMPLE, tmp_path_factory.mktemp("example_plugin"))


@pytest.fixture(scope="module")
def kinds_site(tmp_path_factory) -> Path:
    return install(EXAMPLES / "fusionkit-example-kinds", tmp_path_factory.mktemp("example_kinds"))


def python(site: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (LOAD_PLUGINS_ENV, "PYTHONPATH")}
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []  # where this run's own packages may live
    env.update(PYTHONPATH=os.pathsep.join([str(site), *inherited]), **env_extra)
    completed = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=site.parent, timeout=120
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def test_install_puts_only_the_plugin_in_the_target(site):
    installed = sorted(p.name for p in site.iterdir() if p.name != "__pycache__")
    assert installed == ["fusionkit_example_attention-0.1.0.dist-info", "fusionkit_example_attention.py"]
    entry_points = (site / "fusionkit_example_attention-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[fusionkit]" in entry_points and f"{ENTRY_POINT} = fusionkit_example_attention" in entry_points


def test_installed_plugin_is_listed(site):
    completed = python(site, "-m", "fusionkit", "plugins", "--json")
    listing = {(row["kind"], row["name"]): row for row in json.loads(completed.stdout)}
    row = listing[("attention", NAME)]
    assert (row["plugin"], row["version"]) == (DIST, VERSION)
    assert row["summary"].startswith("Learned spatial gate")
    # the reference plugins are still there, and nothing collided or failed
    assert listing[("student", "se_strip")]["plugin"] == "fusionkit"
    assert "warning" not in completed.stderr.lower()


def test_installed_attention_builds_into_a_student(site):
    code = textwrap.dedent(
        f"""
        import os, torch, fusionkit
        from fusionkit.plugins import build_registry

        net = fusionkit.create("student", "se_strip", channel_attention={NAME!r}, width=8, head="kd_upsample").eval()
        assert [type(m).__name__ for m in net.modules()].count("GatedSpatial") == 1
        with torch.no_grad():
            y = net(torch.rand(1, 6, 32, 32) * 2 - 1)
        assert y.shape == (1, 3, 32, 32) and torch.isfinite(y).all() and y.abs().max() <= 1

        # unknown options are caught by the registry because the block names its options
        try:
            fusionkit.create("attention", {NAME!r}, 8, kernal_size=3)
        except fusionkit.FusionkitError as exc:
            assert "did you mean 'kernel_size'" in str(exc), exc
        else:
            raise AssertionError("misspelt option accepted")

        # FUSIONKIT_LOAD_PLUGINS isolates the plugin, by entry-point name or distribution name
        for allowed in ({ENTRY_POINT!r}, {DIST!r}):
            os.environ["FUSIONKIT_LOAD_PLUGINS"] = allowed
            only = [(c.kind, c.name, c.plugin, c.version) for c in build_registry().list()]
            assert only == [("attention", {NAME!r}, {DIST!r}, {VERSION!r})], only
        print("ok")
        """
    )
    assert python(site, "-c", code).stdout.strip() == "ok"


def test_checkout_alone_does_not_offer_the_example():
    """Guards the isolation above: the example must come from the target dir, not the checkout."""
    assert ("attention", NAME) not in fusionkit.plugins.get_registry()


# ----- fusionkit-example-kinds: one component of every kind ----------------------------------------


def test_every_kind_example_installs_with_its_pretrained_student(kinds_site):
    package = kinds_site / "fusionkit_example_kinds"
    assert (package / "__init__.py").exists()
    assert {p.name for p in (package / "pretrained").iterdir()} == {"tiny_net.json", "tiny_net.safetensors"}


def test_every_kind_example_registers_one_component_of_each_kind(kinds_site):
    completed = python(kinds_site, "-m", "fusionkit", "plugins", "--json", FUSIONKIT_LOAD_PLUGINS=KINDS_ENTRY_POINT)
    rows = json.loads(completed.stdout)
    assert [row["kind"] for row in rows] == list(fusionkit.KINDS)
    assert {(row["plugin"], row["version"]) for row in rows} == {(KINDS_DIST, "0.1.0")}
    assert "warning" not in completed.stderr.lower()


def test_every_component_of_the_kinds_example_works(kinds_site, tmp_path):
    for scene in ("a", "b"):
        (tmp_path / "test" / scene).mkdir(parents=True)
        for index, level in enumerate((40, 200), start=1):
            iio.imwrite(tmp_path / "test" / scene / f"{index:02d}.png", np.full((16, 20, 3), level, np.uint8))
    code = textwrap.dedent(
        f"""
        import torch, fusionkit
        from fusionkit.data import build_loader

        x = torch.rand(2, 3, 3, 16, 16)
        fused = fusionkit.create("method", "tiny_max")(x)
        assert fused.shape == (2, 3, 16, 16)
        assert fusionkit.create("metric", "tiny_brightness")(fused, x).shape == (2,)
        assert fusionkit.create("loss", "tiny_exposedness")(fused, x, None).dim() == 0

        # backbone + attention + head build the plugin's student; its features pair with the teacher's
        student = fusionkit.create("student", "tiny_net", width=4)
        output, features = student(torch.randn(2, 6, 16, 16), return_features=True)
        assert output.shape == (2, 3, 16, 16) and output.abs().max() <= 1
        teacher = fusionkit.create("teacher", "tiny_ae", width=4)
        _, teacher_features = teacher(torch.rand(2, 3, 16, 16) * 2 - 1, return_features=True)
        assert fusionkit.create("distill_loss", "tiny_mse")(features, teacher_features).dim() == 0
        # the same parts fit the reference presets
        preset = fusionkit.create("student", "se_strip", backbone="tiny_backbone", head="tiny_head",
                                  channel_attention="tiny_gate", spatial_attention="tiny_gate", width=4, num_blocks=2)
        assert preset(torch.randn(1, 6, 16, 16)).shape == (1, 3, 16, 16)

        scenes = fusionkit.create("dataset", "tiny_folders", {str(tmp_path)!r}, "test")
        assert [s.name for s in scenes] == ["a", "b"] and all(len(s.exposures) == 2 for s in scenes)
        batch = next(iter(build_loader({str(tmp_path)!r}, "test", dataset="tiny_folders")))
        assert batch["inputs"].shape == (1, 2, 3, 16, 20) and batch["target"] is None
        assert fusionkit.create("pretrained", "tiny_net").name == "tiny_net.safetensors"
        print("ok")
        """
    )
    assert python(kinds_site, "-c", code).stdout.strip() == "ok"


def test_the_kinds_example_recipe_trains_through_fusionkit_train(kinds_site, tmp_path):
    """``fusionkit train --training-recipe tiny_solo``: the engine runs the plugin's one stage, checkpoints and validates it."""
    data = make_fake_dataset(tmp_path / "data", train=2, val=1, test=1, size=48)
    run = tmp_path / "run"
    python(kinds_site, "-m", "fusionkit", "train", "--training-recipe", "tiny_solo", "--data", str(data), "--run-dir", str(run),
           "--width", "4", "--crop", "16", "--batch-size", "2", "--student-steps", "2", "--device", "cpu")
    recipe = json.loads((run / "student.json").read_text())
    assert (recipe["name"], recipe["complete"], recipe["step"]) == ("tiny_net", True, 2)
    assert recipe["plugins"] == {KINDS_DIST: "0.1.0"} and 0 <= recipe["val_tiny_brightness"] <= 1
    assert not (run / "teacher.json").exists()


def test_fuse_uses_the_kinds_example_pretrained_student(kinds_site, tmp_path):
    """No trained run and only this plugin loaded: ``fusionkit fuse`` rebuilds the shipped tiny_net from its recipe."""
    inputs = [tmp_path / "dark.png", tmp_path / "bright.png"]
    for path, level in zip(inputs, (40, 200)):
        iio.imwrite(path, np.full((18, 22, 3), level, np.uint8))
    output = tmp_path / "fused.png"
    completed = python(kinds_site, "-m", "fusionkit", "fuse", *map(str, inputs), "-o", str(output), "--precision", "fp32",
                       FUSIONKIT_LOAD_PLUGINS=KINDS_ENTRY_POINT)
    assert "pretrained student tiny_net" in completed.stderr
    assert iio.imread(output).shape == (18, 22, 3)
