"""End to end: install the example third-party plugin (docs/examples/fusionkit-example-attention) and use it.

The plugin goes into an isolated target directory, never into the venv; the checks run in
subprocesses with ``PYTHONPATH`` pointing there first, exactly as an installed distribution is found.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fusionkit
from fusionkit.plugins import LOAD_PLUGINS_ENV

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "fusionkit-example-attention"
DIST, VERSION, ENTRY_POINT, NAME = "fusionkit-example-attention", "0.1.0", "example_attention", "gated_spatial"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example installed with pip into its own directory (built from a copy: no build/ left in docs/)."""
    tmp = tmp_path_factory.mktemp("example_plugin")
    source = shutil.copytree(
        EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
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
