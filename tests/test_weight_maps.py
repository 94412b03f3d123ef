"""Weight-map students blend the photographs: they start as Mertens, learn, and take any K when asked."""

from __future__ import annotations

import pytest
import torch

import fusionkit
from fusionkit.inference.pipeline import fuse_with_model, student_input
from fusionkit.models.blend import WeightBlend, mertens_weights, pyramid_blend


def exposures(n=2, k=2, h=48, w=40, seed=0):
    torch.manual_seed(seed)
    scene = torch.rand(n, 1, 3, h, w)
    gains = torch.linspace(0.3, 2.5, k).view(1, k, 1, 1, 1)
    return (scene * gains).clamp(0, 1)


def test_weight_student_starts_as_the_mertens_method():
    """The last layer starts at zero and the prior is Mertens' weights: before training it is `mertens`."""
    x = exposures()
    net = fusionkit.create("student", "se_strip", width=8).eval()
    assert net.produces == "weights"
    mertens = fusionkit.create("method", "mertens")
    assert torch.allclose(fuse_with_model(net, x), mertens(x), atol=1e-5)


def test_weight_student_learns_every_parameter():
    """Zero-initialised layers (the head's last, each ResBlock's second conv) move first; then every parameter learns."""
    x = exposures()
    net = fusionkit.create("student", "se_strip", width=8).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(3):
        optimizer.zero_grad()
        fused = net.fuse(x, net(student_input(x, "rgb")))
        loss = (fused - 0.5).abs().mean()
        loss.backward()
        optimizer.step()
    # every weight learns; a bias feeding a batch norm in training mode has an exactly zero gradient
    missing = [name for name, p in net.named_parameters() if p.grad is None or (p.ndim > 1 and not p.grad.abs().sum() > 0)]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("k", [2, 3, 9])
def test_any_k_student_fuses_2_3_or_9_exposures(k):
    net = fusionkit.create("student", "se_strip", width=8, num_inputs=None).eval()
    x = exposures(k=k)
    out = net(student_input(x, "rgb"))
    assert out.shape == (2, k, 48, 40)
    fused = fuse_with_model(net, x)
    assert fused.shape == (2, 3, 48, 40) and 0 <= float(fused.min()) and float(fused.max()) <= 1


def test_any_k_student_does_not_depend_on_exposure_order():
    """Shared per-exposure weights and a mean over exposures: permuting the inputs permutes nothing in the output."""
    net = fusionkit.create("student", "se_strip", width=8, num_inputs=None).eval()
    with torch.no_grad():
        for p in net.head.reconstruct[-1].parameters():
            p.normal_(0, 0.1)  # a trained-looking head, so the logits are not all zero
    x = exposures(k=3)
    assert torch.allclose(fuse_with_model(net, x), fuse_with_model(net, x[:, [2, 0, 1]]), atol=1e-5)


def test_fixed_k_student_refuses_another_k():
    net = fusionkit.create("student", "se_strip", width=8)
    with pytest.raises(fusionkit.FusionkitError, match="fuses 2 exposures, got 3"):
        fuse_with_model(net, exposures(k=3))


def test_any_k_needs_a_weight_head():
    with pytest.raises(fusionkit.FusionkitError, match="needs a weight-map head"):
        fusionkit.create("student", "se_strip", width=8, num_inputs=None, head="kd_upsample")


def test_blend_weights_sum_to_one_and_follow_the_logits():
    x = exposures(k=3)
    logits = torch.zeros(2, 3, 48, 40)
    logits[:, 1] = 20.0  # exposure 1 everywhere
    blend = WeightBlend(mode="direct", prior="none")
    assert torch.allclose(blend.weights(x, torch.zeros_like(logits)).sum(dim=1), torch.ones(2, 1, 48, 40))
    assert torch.allclose(blend(x, logits), x[:, 1], atol=1e-6)
    assert torch.allclose(WeightBlend("pyramid", "none")(x, logits), x[:, 1], atol=1e-5)


def test_pyramid_blend_of_one_exposure_is_that_exposure():
    """The Laplacian pyramid reconstructs its input exactly when all the weight is on one image."""
    x = exposures(k=2, h=37, w=53)
    weights = torch.zeros(2, 2, 1, 37, 53)
    weights[:, 0] = 1
    assert torch.allclose(pyramid_blend(x, weights), x[:, 0], atol=1e-6)


def test_mertens_weights_prefer_the_well_exposed_detail():
    x = exposures(k=2)
    w = mertens_weights(x)
    assert w.shape == (2, 2, 1, 48, 40) and torch.allclose(w.sum(dim=1), torch.ones(2, 1, 48, 40))


def test_blend_options_are_checked():
    with pytest.raises(fusionkit.FusionkitError, match="blend mode"):
        WeightBlend(mode="soft")
    with pytest.raises(fusionkit.FusionkitError, match="blend prior"):
        WeightBlend(prior="dark")


def test_fine_levels_leave_the_tones_to_the_prior():
    """With fine_levels=0 the learned logits choose nothing and the blend is Mertens'; with every level
    fine it is the plain blend; in between, the logits change detail but not the coarse tones."""
    x = exposures(k=2, h=64, w=64)
    logits = torch.zeros(2, 2, 64, 64)
    logits[:, 0] = 6.0
    mertens = fusionkit.create("method", "mertens")(x)
    assert torch.allclose(WeightBlend(fine_levels=0)(x, logits), mertens, atol=1e-5)
    assert torch.allclose(WeightBlend(fine_levels=99)(x, logits), WeightBlend()(x, logits), atol=1e-6)
    low = lambda image: torch.nn.functional.avg_pool2d(image, 16)  # noqa: E731
    detail_only = WeightBlend(fine_levels=2)(x, logits)
    assert (low(detail_only) - low(mertens)).abs().max() < (low(WeightBlend()(x, logits)) - low(mertens)).abs().max() / 4
    with pytest.raises(fusionkit.FusionkitError, match="fine_levels"):
        WeightBlend(mode="direct", fine_levels=2)


def test_prior_shift_tilts_mertens_weights_from_the_darkest_to_the_brightest_exposure():
    x = exposures(k=3, h=32, w=32)
    shuffled = x[:, [2, 0, 1]]  # the rank, not the position, decides the tilt
    mertens = mertens_weights(shuffled)
    tilted = WeightBlend(fine_levels=2, prior_shift=-0.5).prior_weights(shuffled)
    log_tilt = torch.tensor([-0.5, 0.0, -0.25]).view(1, 3, 1, 1, 1)  # brightest -0.5, darkest 0, middle half-way
    assert torch.allclose(tilted, torch.softmax(mertens.log() + log_tilt, dim=1), atol=1e-6)
    assert torch.allclose(WeightBlend(fine_levels=2).prior_weights(shuffled), mertens)
    assert torch.allclose(WeightBlend(prior_shift=-0.5).prior_weights(x[:, :1]), torch.ones(2, 1, 1, 32, 32))


def test_untrained_student_with_a_prior_shift_is_the_tilted_mertens_and_darker():
    x = exposures(k=2, h=48, w=48)
    net = fusionkit.create("student", "se_strip", width=8, prior_shift=-0.5).eval()
    prior = WeightBlend(prior_shift=-0.5).prior_weights(x)
    assert torch.allclose(fuse_with_model(net, x), pyramid_blend(x, prior).clamp(0, 1), atol=1e-5)
    assert fuse_with_model(net, x).mean() < fusionkit.create("method", "mertens")(x).mean()


def test_prior_shift_needs_the_mertens_prior():
    with pytest.raises(fusionkit.FusionkitError, match="prior_shift"):
        WeightBlend(prior="none", prior_shift=-0.25)
