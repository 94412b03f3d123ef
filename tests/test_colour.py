"""Colour conventions: BT.601 luma, the networks' range, YCbCr, DeepFuse's chroma rule and the sRGB curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionkit.colour import (
    from_network_range,
    fuse_chroma,
    gray,
    linear_to_srgb,
    luma,
    rgb_to_ycbcr,
    srgb_to_linear,
    to_network_range,
    ycbcr_to_rgb,
)


def test_luma_is_bt601_of_the_colour_planes_in_float32():
    x = torch.rand(2, 3, 3, 4, 5, dtype=torch.float64)  # (N, K, 3, H, W)
    expected = 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]
    assert luma(x).dtype == torch.float32 and luma(x).shape == (2, 3, 4, 5)
    assert torch.allclose(luma(x), expected.float()) and torch.allclose(gray(*x.unbind(2)), expected)


def test_srgb_curve_round_trips():
    x = np.linspace(0, 1, 257)
    assert np.allclose(linear_to_srgb(srgb_to_linear(x)), x)
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.214, abs=1e-3)


def test_network_range_helpers():
    x = torch.tensor([0.0, 0.25, 1.0])
    assert torch.equal(to_network_range(x), torch.tensor([-1.0, -0.5, 1.0]))
    assert torch.allclose(from_network_range(to_network_range(x)), x)
    assert torch.equal(from_network_range(torch.tensor([-3.0, 2.0])), torch.tensor([0.0, 1.0]))  # clamped


def test_ycbcr_round_trip_and_grey_is_neutral():
    x = torch.rand(2, 2, 3, 5, 5)  # (N, K, C, H, W) works as it is
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)
    grey = rgb_to_ycbcr(torch.full((3, 2, 2), 0.3))
    assert torch.allclose(grey[0], torch.tensor(0.3)) and torch.allclose(grey[1:], torch.tensor(0.5))


def test_fuse_chroma_follows_deepfuse_rule():
    def chroma(*values):  # K exposures of one pixel, same value in Cb and Cr
        return torch.tensor(values, dtype=torch.float32).reshape(1, len(values), 1, 1, 1).expand(1, len(values), 2, 1, 1)

    # sum C_i |C_i - 0.5| / sum |C_j - 0.5|: 0.7 (weight 0.2) and 0.4 (weight 0.1) -> (0.14 + 0.04) / 0.3
    assert torch.allclose(fuse_chroma(chroma(0.7, 0.4)), torch.tensor(0.6))
    assert torch.allclose(fuse_chroma(chroma(0.9, 0.5)), torch.tensor(0.9))  # a neutral exposure has no say
    assert torch.equal(fuse_chroma(chroma(0.5, 0.5)), torch.full((1, 2, 1, 1), 0.5))  # all neutral -> tau
    assert torch.allclose(fuse_chroma(chroma(0.2, 0.8)), torch.tensor(0.5))  # opposite and equal: they cancel
    assert fuse_chroma(torch.rand(2, 3, 2, 4, 5)).shape == (2, 2, 4, 5)  # any number of exposures


def test_fuse_chroma_works_per_channel_and_has_finite_gradients():
    cbcr = torch.tensor([[0.5, 0.6], [0.5, 0.3]]).reshape(1, 2, 2, 1, 1).requires_grad_()
    fused = fuse_chroma(cbcr)
    assert torch.allclose(fused.flatten(), torch.tensor([0.5, (0.6 * 0.1 + 0.3 * 0.2) / 0.3]))
    fused.sum().backward()
    assert torch.isfinite(cbcr.grad).all()


def test_fuse_chroma_checks_its_shape():
    with pytest.raises(ValueError, match=r"\(N, K, 2, H, W\)"):
        fuse_chroma(torch.rand(2, 3, 4, 4))
