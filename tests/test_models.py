"""Every registered model part builds, runs on CPU, and trains; the presets compose as documented.

Parametrised over ``fusionkit.available(kind)``, so a newly installed plugin's components are
covered without editing this file. Default widths are checked for shape and finite values; small
widths (8/16 channels) also for gradients reaching every parameter.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import fusionkit
from fusionkit.errors import ComponentOptionError, UnknownComponentError
from fusionkit.contracts import BackboneOutput
from fusionkit.models import FusionNet, count_parameters, pad_to_multiple
from fusionkit.plugins import get_registry

N, H, W = 2, 64, 64  # batch 2: BatchNorm in train mode needs more than one value per channel
SMALL = 8
PAIRS = ((2, 2), (4, 4), (6, 6))  # the paper's 1-based ResBlock pairs


def names(kind: str) -> list[str]:
    return [c.name for c in fusionkit.available(kind)]


def output_shape(net: FusionNet, h: int, w: int) -> tuple[int, ...]:
    """A student's output: the image, or one weight logit map per exposure for a blending head."""
    return (N, net.num_inputs if net.produces == "weights" else net.in_channels, h, w)


def accepts(kind: str, name: str, option: str) -> bool:
    """Whether the factory names ``option`` (so small-width variants are only asked of parts that have one)."""
    try:
        return option in inspect.signature(get_registry().get(kind, name).factory).parameters
    except (TypeError, ValueError):
        return False


def sized(kind: str, name: str, width: int | None) -> dict:
    return {"width": width} if width is not None and accepts(kind, name, "width") else {}


def assert_finite(*tensors: torch.Tensor) -> None:
    for t in tensors:
        assert torch.isfinite(t).all(), "non-finite values"


def assert_trains(module: nn.Module, loss: torch.Tensor) -> None:
    """``loss.backward()`` reaches every parameter with a finite gradient."""
    module.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient for {bad}"


def pair_batch(n: int = N, h: int = H, w: int = W) -> torch.Tensor:
    return torch.rand(n, 6, h, w) * 2 - 1


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny CPU models: one intra-op thread avoids oversubscription on a shared 2-core machine (5x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- attention ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [8, 16, 64])
@pytest.mark.parametrize("name", names("attention"))
def test_attention_keeps_shape_and_trains(name, channels):
    block = fusionkit.create("attention", name, channels).train()
    x = torch.randn(N, channels, 16, 16, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    assert_finite(y)
    assert_trains(block, (y * torch.randn_like(y)).sum())
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", names("attention"))
def test_every_attention_fits_both_slots_of_a_student(name):
    """As the spatial blocks and as the head's channel attention, and it leaves the distilled features alone."""
    net = fusionkit.create("student", "se_strip", spatial_attention=name, channel_attention=name, width=SMALL)
    x = pair_batch(h=32, w=32)
    image, features = net(x, return_features=True)
    assert image.shape == output_shape(net, 32, 32)
    assert_finite(image)
    # an attention block that wrote into its input would corrupt the last ResBlock's features
    assert torch.equal(features[-1], net.backbone(x).features[-1])


# --- backbone -----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [None, SMALL], ids=["default", "small"])
@pytest.mark.parametrize("name", names("backbone"))
def test_backbone_output_matches_its_declared_channels(name, width):
    body = fusionkit.create("backbone", name, 6, **sized("backbone", name, width)).train()
    out = body(pair_batch())
    assert isinstance(out, BackboneOutput)
    reduction = int(getattr(body, "reduction", 1))
    assert out.bottleneck.shape == (N, body.out_channels, H // reduction, W // reduction)
    if body.skip_channels:
        assert out.skip is not None and out.skip.shape[:2] == (N, body.skip_channels)
    assert [f.shape[1] for f in out.features] == list(body.feature_channels)
    assert_finite(out.bottleneck, *out.features)
    if width is not None:
        loss = out.bottleneck.square().mean() + sum(f.mean() for f in out.features)
        if out.skip is not None:
            loss = loss + out.skip.mean()
        assert_trains(body, loss)


# --- fusion head --------------------------------------------------------------------------------


@pytest.mark.parametrize("use_skip", [True, False], ids=["skip", "no_skip"])
@pytest.mark.parametrize("width", [None, SMALL], ids=["default", "small"])
@pytest.mark.parametrize("backbone", names("backbone"))
@pytest.mark.parametrize("name", names("fusion_head"))
def test_head_built_from_declared_channels_makes_an_image(name, backbone, width, use_skip):
    body = fusionkit.create("backbone", backbone, 6, **sized("backbone", backbone, width))
    skip_channels = body.skip_channels if use_skip else 0
    head = fusionkit.create("fusion_head", name, body.out_channels, skip_channels=skip_channels, out_channels=3).train()
    with torch.no_grad():
        out = body(pair_batch())
    bottleneck = out.bottleneck.clone().requires_grad_(True)
    image = head(bottleneck, out.skip if skip_channels else None)
    assert image.shape == (N, 3, H, W)
    assert_finite(image)
    assert image.abs().max() <= 1
    if width is not None:
        assert_trains(head, (image * torch.randn_like(image)).sum())
        assert bottleneck.grad is not None


# --- students and teachers ------------------------------------------------------------------------


@pytest.mark.parametrize("width", [None, SMALL], ids=["default", "small"])
@pytest.mark.parametrize("name", names("student"))
def test_student_fuses_a_pair(name, width):
    net = fusionkit.create("student", name, **sized("student", name, width)).train()
    out = net(pair_batch())
    assert out.shape == output_shape(net, H, W)
    assert_finite(out)
    image = net.fuse(torch.rand(N, 2, 3, H, W), out) if net.produces == "weights" else out
    assert image.shape == (N, 3, H, W)
    assert image.abs().max() <= 1
    if width is not None and net.produces == "image":  # a weight head's last layer starts at zero: see below
        assert_trains(net, (image - torch.rand_like(image)).abs().mean())


@pytest.mark.parametrize("width", [None, SMALL], ids=["default", "small"])
@pytest.mark.parametrize("name", names("teacher"))
def test_teacher_reconstructs_an_image(name, width):
    net = fusionkit.create("teacher", name, **sized("teacher", name, width)).train()
    gt = torch.rand(N, 3, H, W) * 2 - 1
    image = net(gt)
    assert image.shape == gt.shape
    assert_finite(image)
    assert image.abs().max() <= 1
    if width is not None:
        assert_trains(net, (image - gt).abs().mean())


@pytest.mark.parametrize("width", [None, SMALL], ids=["default", "small"])
@pytest.mark.parametrize("teacher", names("teacher"))
@pytest.mark.parametrize("student", names("student"))
def test_paired_student_and_teacher_features_have_equal_shapes(student, teacher, width):
    s_net = fusionkit.create("student", student, **sized("student", student, width))
    t_net = fusionkit.create("teacher", teacher, **sized("teacher", teacher, width))
    with torch.no_grad():
        _, s_features = s_net(pair_batch(), return_features=True)
        _, t_features = t_net(torch.rand(N, 3, H, W) * 2 - 1, return_features=True)
    for m, n in PAIRS:
        assert s_features[m - 1].shape == t_features[n - 1].shape
    # where a network declares its feature channels, they match what it returns
    declared = getattr(getattr(s_net, "backbone", None), "feature_channels", None)
    if declared is not None:
        assert [f.shape[1] for f in s_features] == list(declared)
    if getattr(t_net, "feature_channels", None) is not None:
        assert [f.shape[1] for f in t_features] == list(t_net.feature_channels)


@pytest.mark.parametrize(
    ("kind", "name"), [(kind, name) for kind in ("student", "teacher") for name in names(kind)]
)
def test_outputs_stay_in_tanh_range_for_extreme_inputs(kind, name):
    net = fusionkit.create(kind, name, **sized(kind, name, SMALL))
    channels = 6 if kind == "student" else 3
    with torch.no_grad():
        image = net(torch.randn(N, channels, 32, 32) * 1e4)
    assert_finite(image)
    assert image.min() >= -1 and image.max() <= 1


# --- distillation losses --------------------------------------------------------------------------


def features(n: int = 6, c: int = SMALL) -> list[torch.Tensor]:
    return [torch.randn(N, c, 16, 16) for _ in range(n)]


@pytest.mark.parametrize("name", names("distill_loss"))
def test_distill_loss_is_zero_for_equal_features_and_positive_otherwise(name):
    loss = fusionkit.create("distill_loss", name)
    teacher = features()
    assert float(loss([t.clone() for t in teacher], teacher)) == 0.0
    student = [t + 0.1 * torch.randn_like(t) for t in teacher]
    for s in student:
        s.requires_grad_(True)
    value = loss(student, teacher)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert any(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_l1_features_pairs_paper_blocks_2_4_6_one_based():
    loss = fusionkit.create("distill_loss", "l1_features")
    assert loss.pairs == list(PAIRS)
    teacher = features()
    student = [t.clone() for t in teacher]
    for index in (0, 2, 4):  # blocks 1, 3, 5 are not distilled
        student[index] = student[index] + 1
    assert float(loss(student, teacher)) == 0.0
    student[1] = student[1] + 1  # block 2 is
    assert float(loss(student, teacher)) == pytest.approx(1.0)


def test_l1_features_custom_pairs_are_data():
    teacher = features()
    student = [t + 0.5 for t in teacher]
    loss = fusionkit.create("distill_loss", "l1_features", pairs=[(1, 1), (3, 5)])
    assert loss.pairs == [(1, 1), (3, 5)]
    expected = (student[0] - teacher[0]).abs().mean() + (student[2] - teacher[4]).abs().mean()
    assert float(loss(student, teacher)) == pytest.approx(float(expected))


def test_l1_features_rejects_out_of_range_and_malformed_pairs():
    loss = fusionkit.create("distill_loss", "l1_features", pairs=[(2, 2), (8, 6)])
    with pytest.raises(ValueError, match=r"pair \(8, 6\) needs student block 8.*offers 6"):
        loss(features(), features())
    for bad in ([], [(0, 1)], [(1, 2, 3)]):
        with pytest.raises(ValueError, match="1-based"):
            fusionkit.create("distill_loss", "l1_features", pairs=bad)
    with pytest.raises(ValueError, match=r"pair \(2, 2\): student .* vs teacher"):
        fusionkit.create("distill_loss", "l1_features")(features(c=8), features(c=16))


# --- composing and swapping parts -----------------------------------------------------------------


def test_swapping_attention_for_timm_blocks():
    from timm.layers.cbam import CbamModule
    from timm.layers.eca import EcaModule

    from fusionkit_kd.attention import SqueezeExcite, StripPooling

    net = fusionkit.create("student", "se_strip", channel_attention="eca", spatial_attention="cbam", width=SMALL)
    kinds = [type(m) for m in net.modules()]
    assert kinds.count(CbamModule) == 2 and kinds.count(EcaModule) == 1
    assert SqueezeExcite not in kinds and StripPooling not in kinds
    assert all(isinstance(m, CbamModule) for m in net.bottleneck_attention)
    assert net(pair_batch(h=32, w=32)).shape == output_shape(net, 32, 32)


@pytest.mark.parametrize(
    ("preset", "se_blocks", "strip_blocks", "skip"),
    [("kd_baseline", 0, 0, False), ("dense_fusion", 1, 0, True), ("se_strip", 1, 2, True)],
)
def test_reference_presets_compose_the_papers_ablations(preset, se_blocks, strip_blocks, skip):
    from fusionkit_kd.attention import SqueezeExcite, StripPooling

    net = fusionkit.create("student", preset, width=SMALL, head="kd_upsample")
    assert isinstance(net, FusionNet)
    kinds = [type(m) for m in net.modules()]
    assert kinds.count(SqueezeExcite) == se_blocks and kinds.count(StripPooling) == strip_blocks
    assert net.head.use_skip is skip
    assert isinstance(net.head.reconstruct[-1], nn.Tanh)


def test_student_options_reshape_the_network():
    net = fusionkit.create("student", "se_strip", width=SMALL, num_blocks=4, spatial_blocks=3, skip=False)
    assert len(net.bottleneck_attention) == 3 and not net.head.use_skip
    _, feats = net(pair_batch(h=32, w=32), return_features=True)
    assert len(feats) == 4
    assert len(fusionkit.create("student", "kd_baseline", width=SMALL, spatial_blocks=0).bottleneck_attention) == 0


def test_student_with_three_single_channel_exposures():
    net = fusionkit.create("student", "dense_fusion", width=SMALL, in_channels=1, num_inputs=3, head="kd_upsample")
    assert net(torch.rand(N, 3, 32, 32)).shape == (N, 1, 32, 32)
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\) = 3 exposures of 1 channels"):
        net(torch.rand(N, 6, 32, 32))


def test_student_parts_can_be_named_explicitly_and_mistakes_are_one_line():
    net = fusionkit.create("student", "se_strip", backbone="kd_resnet", head="kd_upsample", width=SMALL)
    assert net.multiple_of == 4
    with pytest.raises(UnknownComponentError, match="no attention named 'stirp'.*did you mean 'strip'"):
        fusionkit.create("student", "se_strip", spatial_attention="stirp", width=SMALL)
    with pytest.raises(UnknownComponentError, match="no backbone named 'resnet'"):
        fusionkit.create("student", "se_strip", backbone="resnet", width=SMALL)
    with pytest.raises(ComponentOptionError, match="student 'se_strip' has no option 'widht'.*did you mean 'width'"):
        fusionkit.create("student", "se_strip", widht=SMALL)


def test_teacher_follows_the_paper():
    teacher = fusionkit.create("teacher", "ae", width=SMALL)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in teacher.modules()) == 2
    assert isinstance(teacher.reconstruct[-1], nn.Tanh)
    assert teacher.multiple_of == 4 and teacher.num_inputs == 1


# --- model helpers ------------------------------------------------------------------------------


def test_count_parameters():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert count_parameters(net) == 3 * 4 * 9 + 4 + 4 + 4


def test_pad_to_multiple():
    x = torch.rand(1, 3, 30, 33)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (1, 3, 32, 36) and size == (30, 33)
    assert torch.equal(padded[..., :30, :33], x)
    same, size = pad_to_multiple(torch.rand(1, 3, 32, 32), 4)
    assert same.shape == (1, 3, 32, 32) and size == (32, 32)
    tiny, _ = pad_to_multiple(torch.rand(1, 3, 1, 2), 4)  # too small to reflect: replicated
    assert tiny.shape == (1, 3, 4, 4)
