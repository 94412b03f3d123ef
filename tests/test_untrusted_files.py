"""Files fusionkit did not write are not trusted: a crafted manifest deletes nothing outside its folder,
and photos with non-finite pixels are refused with one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusionkit.data.io import read_image
from fusionkit.data.manifest import ensure_generated
from fusionkit.errors import FusionkitError


def test_a_crafted_manifest_deletes_nothing_through_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    crafted = {"version": 0, "complete": False, "files": {"link/victim.txt": None, "../outside/victim.txt": None}}
    (out / "set.json").write_text(json.dumps(crafted))

    def generate():
        (out / "a.txt").write_text("new")
        return {}

    ensure_generated(out, "set.json", {"version": 1}, ["a.txt"], generate, what="test set")
    assert victim.read_text() == "keep me"
    assert (out / "a.txt").read_text() == "new"


def test_a_manifest_file_that_is_itself_a_link_is_not_deleted(tmp_path):
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").symlink_to(outside)
    (out / "set.json").write_text(json.dumps({"version": 0, "complete": True, "files": {"old.png": 8}}))
    ensure_generated(out, "set.json", {"version": 1}, [], lambda: {}, what="test set")
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_naming_the_file(tmp_path, bad):
    tifffile = pytest.importorskip("tifffile")
    pixels = np.full((32, 32, 3), 0.5, dtype=np.float32)
    pixels[10:20, 10:20] = bad
    path = tmp_path / "exposure.tif"
    tifffile.imwrite(path, pixels)
    with pytest.raises(FusionkitError) as caught:
        read_image(path)
    message = str(caught.value)
    assert str(path) in message and "non-finite" in message and "\n" not in message
