"""Perceptual loss: weights only from a local file (torchvision/timm keys, safetensors or .pth), never random."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import vgg19

from fusionkit.runs.checkpoint import read_recipe
from fusionkit.training.config import make_config
from fusionkit.errors import FusionkitError
from fusionkit.training.perceptual import build_perceptual_loss
from fusionkit.training.engine import train
from tests.fake_exposure_data import make_fake_dataset


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """A VGG19 feature extractor's weights saved the ways users have them (random values: only loading is tested)."""
    root = tmp_path_factory.mktemp("vgg")
    features = {f"features.{k}": v for k, v in vgg19().features.state_dict().items()}
    save_file(features, str(root / "vgg19_timm_style.safetensors"))
    torch.save(features, root / "vgg19_torchvision_style.pth")
    return root


def test_loads_safetensors_and_pth_and_is_frozen(vgg_files):
    for name in ("vgg19_timm_style.safetensors", "vgg19_torchvision_style.pth"):
        loss, note = build_perceptual_loss(vgg_files / name)
        assert loss is not None and str(vgg_files / name) in note
        assert all(not p.requires_grad for p in loss.parameters())
        a = torch.rand(1, 3, 32, 32, requires_grad=True)
        value = loss(a, torch.rand(1, 3, 32, 32))
        value.backward()
        assert value > 0 and a.grad is not None and float(loss(a, a.detach())) == 0.0


def test_no_weights_means_off_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    loss, note = build_perceptual_loss(None)
    assert loss is None and note.startswith("perceptual loss off") and "vgg_weights" in note


def test_not_a_vgg_file_is_a_one_line_error(tmp_path):
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(FusionkitError, match="not a VGG19 state dict"):
        build_perceptual_loss(tmp_path / "other.safetensors")


def test_training_with_vgg_weights_logs_the_term(vgg_files, tmp_path):
    data = make_fake_dataset(tmp_path / "data", train=2, val=1, test=1, size=48)
    config = make_config({"data": str(data), "run_dir": str(tmp_path / "run"), "width": 8, "crop": 32, "batch_size": 2,
                          "teacher_steps": 2, "student_steps": 2, "log_every": 1, "device": "cpu",
                          "loss_options": {"perceptual": {"vgg_weights": str(vgg_files / "vgg19_timm_style.safetensors")}}})
    run = train(config)
    recipe = read_recipe(run / "student")
    assert recipe["notes"]["perceptual"].startswith("perceptual loss on") and recipe["losses"]["perceptual"] == 1.0
    assert '"loss_perceptual"' in (run / "log.jsonl").read_text()
