"""The one Fuser: built from a checkpoint, a method name or the pretrained default, it fuses the same way for
``fuse``, the bench and training validation."""

from __future__ import annotations

import pytest
import torch

import fusionkit
from fusionkit.errors import FusionkitError
from fusionkit.inference.fuser import Fuser
from fusionkit.inference.pipeline import fuse_with_model, reconstruct_with_teacher
from fusionkit.runs.checkpoint import save_model


def bracket(k: int = 2, h: int = 40, w: int = 56) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    ramp = torch.rand(1, 1, 3, h, w, generator=generator)
    return (ramp * torch.linspace(0.4, 1.6, k).view(1, k, 1, 1, 1)).clamp(0, 1)


@pytest.fixture
def checkpoints(tmp_path) -> dict[str, object]:
    """A tiny student and teacher saved as a run folder would hold them."""
    student = fusionkit.create("student", "se_strip", width=4).eval()
    teacher = fusionkit.create("teacher", "ae", width=4).eval()
    save_model(tmp_path / "student.safetensors", student, {"kind": "student", "name": "se_strip", "options": {"width": 4}, "color": "rgb"})
    save_model(tmp_path / "teacher.safetensors", teacher, {"kind": "teacher", "name": "ae", "options": {"width": 4}, "color": "rgb"})
    return {"folder": tmp_path, "student": student, "teacher": teacher}


def test_a_method_by_name_fuses_as_the_method_itself():
    exposures = bracket()
    fuser = Fuser.from_method("mertens")
    assert (fuser.role, fuser.label, fuser.oracle, fuser.needs_reference) == ("method", "mertens", False, False)
    assert torch.equal(fuser(exposures), fusionkit.create("method", "mertens")(exposures).clamp(0, 1))


def test_an_oracle_needs_the_reference():
    fuser = Fuser.from_method("best_input")
    assert fuser.oracle and fuser.needs_reference
    with pytest.raises(FusionkitError, match="looks at the reference image"):
        fuser(bracket())
    reference = bracket(1)[:, 0]
    assert fuser(bracket(), reference).shape == reference.shape


def test_a_run_folder_gives_its_student_fused_through_the_pipeline(checkpoints):
    exposures = bracket()
    fuser = Fuser.from_checkpoint(checkpoints["folder"])
    assert fuser.role == "student" and fuser.label.startswith("se_strip (")
    assert torch.equal(fuser(exposures), fuse_with_model(checkpoints["student"], exposures, "rgb"))
    small = Fuser.from_checkpoint(checkpoints["folder"], work_size=24)
    assert torch.equal(small(exposures), fuse_with_model(checkpoints["student"], exposures, "rgb", work_size=24))


def test_a_teacher_checkpoint_reconstructs_the_reference(checkpoints):
    fuser = Fuser.from_checkpoint(checkpoints["folder"] / "teacher.safetensors")
    reference = bracket(1)[:, 0]
    assert fuser.role == "teacher" and fuser.needs_reference and fuser.num_inputs is None
    assert torch.equal(fuser(bracket(), reference), reconstruct_with_teacher(checkpoints["teacher"], reference, "rgb"))


def test_tiles_apply_to_students_only(checkpoints):
    with pytest.raises(FusionkitError, match="tile applies to a student"):
        Fuser.from_method("mertens", tile=32)
    tiled = Fuser.from_checkpoint(checkpoints["folder"], tile=32, overlap=8)
    assert tiled(bracket()).shape == (1, 3, 40, 56)


def test_the_default_is_the_shipped_student_when_no_run_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fuser = Fuser.default()
    assert fuser.role == "student" and "se_strip_real" in fuser.source
    assert "pretrained student se_strip_real" in capsys.readouterr().err
    assert fuser(bracket(3)).shape == (1, 3, 40, 56)  # the shipped student fuses any number of exposures


def test_precision_is_chosen_once_per_device_and_channel_count(checkpoints, monkeypatch):
    import fusionkit.inference.fuser as fuser_module

    calls = []
    original = fuser_module.pick_precision
    monkeypatch.setattr(fuser_module, "pick_precision", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    fuser = Fuser.from_checkpoint(checkpoints["folder"], precision="fp32")
    for _ in range(3):
        fuser(bracket())
    assert calls == [6]
