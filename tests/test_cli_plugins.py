"""``fusionkit --version`` and ``fusionkit plugins``: in process with click's CliRunner, and once as the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import fusionkit
from fusionkit.cli.main import cli
from fusionkit.errors import UnknownComponentError
from fusionkit.plugins import LOAD_PLUGINS_ENV

#: What the reference plugins (distribution "fusionkit") must offer.
REFERENCE = [
    ("attention", "se"),
    ("attention", "strip"),
    ("attention", "none"),
    ("attention", "eca"),
    ("attention", "cbam"),
    ("backbone", "kd_resnet"),
    ("fusion_head", "kd_upsample"),
    ("distill_loss", "l1_features"),
    ("student", "kd_baseline"),
    ("student", "dense_fusion"),
    ("student", "se_strip"),
    ("teacher", "ae"),
]
KEYS = {"kind", "name", "plugin", "version", "summary"}


def run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def check_listing(listing) -> None:
    assert isinstance(listing, list) and listing
    assert all(isinstance(row, dict) and KEYS <= set(row) for row in listing)
    found = {(row["kind"], row["name"]): row for row in listing}
    for key in REFERENCE:
        assert key in found, f"{key} missing from `fusionkit plugins --json`"
        assert found[key]["plugin"] == "fusionkit"
        assert found[key]["version"] == fusionkit.__version__
        assert found[key]["summary"]


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"fusionkit, version {fusionkit.__version__}"


def test_plugins_table():
    result = run("plugins")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PLUGIN", "SUMMARY"]
    rows = {tuple(line.split()[:2]): line for line in lines[1:]}
    for key in REFERENCE:
        assert key in rows
        assert f"fusionkit {fusionkit.__version__}" in rows[key]
    assert "Strip pooling mixed pooling module" in rows[("attention", "strip")]
    assert len(lines) - 1 == len(fusionkit.available())


def test_plugins_of_one_kind():
    result = run("plugins", "--kind", "attention")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows and {row[0] for row in rows} == {"attention"}
    names = [row[1] for row in rows]
    assert {"se", "strip", "none", "eca", "cbam", "timm_se", "timm_strip"} <= set(names)
    assert names == sorted(names)


def test_plugins_rejects_an_unknown_kind():
    result = run("plugins", "--kind", "atention")
    assert result.exit_code == 2
    assert "Invalid value for '--kind'" in result.output


def test_plugins_json():
    result = run("plugins", "--json")
    assert result.exit_code == 0
    check_listing(json.loads(result.stdout))


def test_plugins_json_of_one_kind():
    listing = json.loads(run("plugins", "--json", "--kind", "teacher").stdout)
    assert [(row["kind"], row["name"]) for row in listing] == [(c.kind, c.name) for c in fusionkit.available("teacher")]


def test_user_mistakes_are_one_line_errors_without_traceback():
    """The group turns a FusionkitError raised by any command into ``Error: <message>`` and exit code 1."""

    @click.command("fail-for-test")
    def fail():
        fusionkit.create("attention", "stirp", 8)

    cli.add_command(fail)
    try:
        result = CliRunner().invoke(cli, ["fail-for-test"])
    finally:
        cli.commands.pop("fail-for-test")
    assert result.exit_code == 1
    assert not isinstance(result.exception, UnknownComponentError)
    assert result.output.startswith("Error: no attention named 'stirp' (did you mean 'strip'")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.integration
def test_installed_console_script_lists_plugins_as_json():
    script = Path(sys.executable).parent / "fusionkit"
    assert script.exists(), f"console script not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k != LOAD_PLUGINS_ENV}
    completed = subprocess.run(
        [str(script), "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    check_listing(json.loads(completed.stdout))
    assert "warning" not in completed.stderr.lower()
