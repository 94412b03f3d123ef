"""Transforms: shared crops and flips, standard-deviation normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionkit.data import random_crop, random_flip, std_denormalize, std_normalize


def test_crop_and_flip_are_shared_by_every_image_of_a_stack():
    base = torch.arange(3 * 10 * 12, dtype=torch.float32).reshape(3, 10, 12)
    stack = torch.stack([base, base * 2, base + 7])  # two "exposures" and a "target" of one scene
    seen_flips = set()
    for seed in range(16):
        rng = np.random.default_rng(seed)
        out = random_flip(random_crop(stack, (4, 5), rng), rng)
        assert out.shape == (3, 3, 4, 5)
        assert torch.equal(out[1], out[0] * 2) and torch.equal(out[2], out[0] + 7)
        seen_flips.add((bool(out[0, 0, 0, 0] > out[0, 0, 0, 1]), bool(out[0, 0, 0, 0] > out[0, 0, 1, 0])))
    assert len(seen_flips) == 4  # left-right and up-down flips both happen, independently


def test_crop_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="larger than the image"):
        random_crop(torch.zeros(3, 4, 4), (5, 4), np.random.default_rng(0))


def test_std_normalize_uses_one_mean_and_std_per_sample_over_all_exposures():
    x = torch.rand(4, 2, 3, 8, 9)
    x[1] = x[1] * 0.1 + 0.7  # a very different sample must not affect the others
    normalised, stats = std_normalize(x)
    assert stats.mean.shape == (4, 1, 1, 1, 1) and stats.std.shape == (4, 1, 1, 1, 1)
    for i in range(4):
        assert torch.allclose(stats.mean[i].flatten(), x[i].mean().reshape(1))
        assert torch.allclose(stats.std[i].flatten(), x[i].std(correction=0).reshape(1))
        assert abs(float(normalised[i].mean())) < 1e-5 and abs(float(normalised[i].std(correction=0)) - 1) < 1e-4
    # jointly: the darker exposure stays darker after normalisation
    x = torch.stack([torch.full((3, 4, 4), 0.2), torch.full((3, 4, 4), 0.8)])[None]
    normalised, _ = std_normalize(x)
    assert (normalised[0, 0] < normalised[0, 1]).all()


def test_std_denormalize_inverts_std_normalize():
    x = torch.rand(3, 2, 3, 5, 6)
    x[2] = 0.5  # a flat sample: std 0, kept finite by the epsilon
    normalised, stats = std_normalize(x)
    assert torch.isfinite(normalised).all()
    assert torch.allclose(std_denormalize(normalised, stats), x, atol=1e-6)
    one, one_stats = std_normalize(x[0])  # a single (K, C, H, W) sample works too
    assert torch.allclose(one, normalised[0]) and one_stats.mean.shape == (1, 1, 1, 1)
