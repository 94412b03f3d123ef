"""Q^AB/F and normalised mutual information against values derived without the module's code.

Expected values come from (a) naive per-pixel Python references written here from the papers'
formulas and MATLAB's documented conv2/rgb2gray/im2uint8 behaviour, and (b) cases whose answer
follows by hand from those formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import convolve

from fusionkit.evaluation.fusion_metrics import gray_levels, normalized_mutual_information, qabf
from fusionkit.evaluation.metrics import MetricInputError

# Constants as printed in Xydeas & Petrović (2000) and Qabf.m, typed again rather than imported.
TG, KG, DG, TA, KA, DA = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
#: Q^kF where the fused image keeps an input's edge exactly: G = 1 and A = 1.
Q_MAX = TG / (1 + math.exp(KG * (1 - DG))) * TA / (1 + math.exp(KA * (1 - DA)))
METRICS = (qabf, normalized_mutual_information)


def ref_gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2gray(im2uint8(rgb)) of one (3, H, W) image, pixel by pixel: round half away from zero."""
    out = np.zeros(rgb.shape[1:])
    for i, j in np.ndindex(out.shape):
        r, g, b = (math.floor(255 * min(max(float(c), 0.0), 1.0) + 0.5) for c in rgb[:, i, j])
        out[i, j] = math.floor(0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b + 0.5)
    return out


def ref_conv2_same(img: np.ndarray, h: list[list[int]]) -> np.ndarray:
    """MATLAB conv2(img, h, 'same') for a 3x3 h: out(i, j) = sum_uv h(u, v) img(i + 1 - u, j + 1 - v), zeros outside."""
    rows, cols = img.shape
    out = np.zeros(img.shape)
    for i, j in np.ndindex(img.shape):
        for u in range(3):
            for v in range(3):
                p, q = i + 1 - u, j + 1 - v
                if 0 <= p < rows and 0 <= q < cols:
                    out[i, j] += h[u][v] * img[p, q]
    return out


def ref_edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength and orientation with Qabf.m's kernels h3 (x) and h1 (y), alpha = pi/2 where s_x = 0."""
    sx = ref_conv2_same(img, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    sy = ref_conv2_same(img, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    g, alpha = np.zeros(img.shape), np.zeros(img.shape)
    for i, j in np.ndindex(img.shape):
        g[i, j] = math.sqrt(sx[i, j] ** 2 + sy[i, j] ** 2)
        alpha[i, j] = math.pi / 2 if sx[i, j] == 0 else math.atan(sy[i, j] / sx[i, j])
    return g, alpha


def ref_qabf(fused: np.ndarray, exposures: np.ndarray) -> float:
    """Paper formula, one pixel at a time: sum_k sum Q^kF g_k / sum_k sum g_k, G = 1 for equal strengths."""
    g_f, a_f = ref_edges(ref_gray(fused))
    num = den = 0.0
    for exposure in exposures:
        g_k, a_k = ref_edges(ref_gray(exposure))
        for i, j in np.ndindex(g_k.shape):
            if g_k[i, j] > g_f[i, j]:
                strength = g_f[i, j] / g_k[i, j]
            elif g_k[i, j] < g_f[i, j]:
                strength = g_k[i, j] / g_f[i, j]
            else:
                strength = 1.0
            orientation = 1 - abs(a_k[i, j] - a_f[i, j]) / (math.pi / 2)
            q = TG / (1 + math.exp(KG * (strength - DG))) * TA / (1 + math.exp(KA * (orientation - DA)))
            num += q * g_k[i, j]
            den += g_k[i, j]
    return num / den


def ref_nmi(fused: np.ndarray, exposures: np.ndarray) -> float:
    """2 sum_k MI(k, F) / (H(k) + H(F)) with MI = sum p(a, f) log(p(a, f) / (p(a) p(f))) from counted pixels."""
    f = ref_gray(fused).astype(int).ravel()
    total = 0.0
    for exposure in exposures:
        a = ref_gray(exposure).astype(int).ravel()
        n = len(a)
        joint, count_a, count_f = {}, {}, {}
        for u, v in zip(a, f):
            joint[u, v] = joint.get((u, v), 0) + 1
            count_a[u] = count_a.get(u, 0) + 1
            count_f[v] = count_f.get(v, 0) + 1
        mi = sum(c / n * math.log((c / n) / (count_a[u] / n * count_f[v] / n)) for (u, v), c in joint.items())
        h_a = -sum(c / n * math.log(c / n) for c in count_a.values())
        h_f = -sum(c / n * math.log(c / n) for c in count_f.values())
        total += 2 * mi / (h_a + h_f)
    return total


def random_batch(n: int, k: int, size: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs that reach every branch: smooth random colour, a coarse 4-level image (many s_x = 0 and
    equal strengths), a flat patch, values outside [0, 1]; fused = a blend with pixels copied from input 0."""
    rng = np.random.default_rng(seed)
    exposures = rng.random((n, k, 3, size, size))
    exposures[:, 0] = rng.integers(0, 4, (n, 3, size, size)) / 3
    exposures[:, -1, :, :4, :5] = 0.4
    exposures[:, -1, 0, -1, -1] = 1.3
    fused = exposures.mean(axis=1)
    fused[:, :, 6:, :6] = exposures[:, 0, :, 6:, :6]
    return torch.from_numpy(fused), torch.from_numpy(exposures)


def neutral(levels: np.ndarray) -> torch.Tensor:
    """Integer grey levels (..., H, W) as a grey RGB float tensor (..., 3, H, W) whose gray_levels are exactly them."""
    return torch.from_numpy(np.repeat(levels[..., None, :, :] / 255, 3, axis=-3))


@pytest.mark.parametrize("k", [2, 3])
def test_metrics_match_naive_references(k):
    """Both metrics against the per-pixel references above (ref_qabf, ref_nmi) on 12x12 images, to 1e-9."""
    fused, exposures = random_batch(2, k, seed=k)
    for i in range(2):
        assert qabf(fused, exposures)[i].item() == pytest.approx(ref_qabf(fused[i].numpy(), exposures[i].numpy()),
                                                                 abs=1e-9)
        assert normalized_mutual_information(fused, exposures)[i].item() == pytest.approx(
            ref_nmi(fused[i].numpy(), exposures[i].numpy()), abs=1e-9
        )


def test_reference_pieces_match_scipy_and_gray_levels():
    """The reference's conv2 equals scipy.ndimage.convolve with a zero border; its grey levels equal the module's."""
    fused, _ = random_batch(1, 2)
    gray = ref_gray(fused[0].numpy())
    h = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    np.testing.assert_array_equal(ref_conv2_same(gray, h), convolve(gray, np.array(h, float), mode="constant"))
    np.testing.assert_array_equal(gray_levels(fused)[0].numpy(), gray)


def test_fused_equal_to_every_input_scores_the_maximum():
    """Q^AB/F: G = A = 1 at every edge gives Q_MAX whatever the weights. Q_MI: MI(A, A) = H(A), so each term is 1."""
    levels = np.random.default_rng(1).integers(0, 256, (1, 16, 16))
    image = neutral(levels)
    for k in (1, 2, 3):
        exposures = image[:, None].expand(1, k, 3, 16, 16)
        assert qabf(image, exposures).item() == pytest.approx(Q_MAX, abs=1e-12)
        assert normalized_mutual_information(image, exposures).item() == pytest.approx(k, abs=1e-12)


def test_fused_equal_to_one_input_with_the_other_flat():
    """A flat input has no entropy (MI 0) and, if black like the zero border, no edges (weight 0): only the copied
    input counts. (Any other flat level has edges along the zero-padded border, as in Qabf.m.)"""
    levels = np.random.default_rng(2).integers(0, 256, (1, 16, 16))
    image = neutral(levels)
    exposures = torch.stack((image, torch.zeros_like(image)), dim=1)
    assert qabf(image, exposures).item() == pytest.approx(Q_MAX, abs=1e-12)
    assert normalized_mutual_information(image, exposures).item() == pytest.approx(1.0, abs=1e-12)


def test_qabf_of_doubled_contrast():
    """Fused levels twice the input's (zero border too): g_F = 2 g_A and alpha unchanged, so G = 1/2 and A = 1
    at every edge: Q = Gamma_g / (1 + e^0) * Q_a(1)."""
    levels = np.random.default_rng(3).integers(0, 128, (1, 16, 16))
    exposures = torch.stack((neutral(levels), torch.zeros(1, 3, 16, 16, dtype=torch.float64)), dim=1)
    expected = TG / 2 * TA / (1 + math.exp(KA * (1 - DA)))
    assert qabf(neutral(2 * levels), exposures).item() == pytest.approx(expected, abs=1e-12)


def test_mutual_information_of_independent_images():
    """Rows of A take 16 levels, columns of F 16 others: each (a, f) pair occurs once, p(a, f) = p(a) p(f), MI = 0.
    Random 4-level images: the plug-in estimate's bias is about 9 / (2 * 4096) nats, so Q_MI stays near 0."""
    rows = np.repeat(np.arange(0, 256, 16)[:, None], 16, axis=1)
    a, f = neutral(rows[None]), neutral(rows.T[None] + 3)
    assert normalized_mutual_information(f, a[:, None]).item() == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(4)
    a, f = (neutral(rng.integers(0, 4, (1, 64, 64)) * 85) for _ in range(2))
    assert 0 <= normalized_mutual_information(f, a[:, None]).item() < 0.01


@pytest.mark.parametrize("metric", METRICS)
def test_batch_equals_single_images_and_order_does_not_matter(metric):
    fused, exposures = random_batch(3, 3, size=20, seed=5)
    batched = metric(fused, exposures)
    assert batched.shape == (3,) and batched.dtype == torch.float64
    singles = torch.cat([metric(fused[i : i + 1], exposures[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched.numpy(), singles.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(metric(fused, exposures[:, [2, 0, 1]]).numpy(), batched.numpy(), rtol=0, atol=1e-12)
    fused, exposures = fused.float(), exposures.float()
    assert torch.equal(metric(fused, exposures), metric(fused.double(), exposures.double()))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shapes", [((1, 3, 8, 8), (1, 2, 3, 8, 9)), ((1, 1, 8, 8), (1, 2, 1, 8, 8)),
                                    ((2, 3, 8, 8), (1, 2, 3, 8, 8)), ((1, 3, 8, 8), (1, 0, 3, 8, 8))])
def test_mismatched_inputs_are_refused(metric, shapes):
    with pytest.raises(MetricInputError):
        metric(torch.rand(shapes[0]), torch.rand(shapes[1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("metric", METRICS)
def test_cuda_matches_cpu(metric):
    fused, exposures = random_batch(2, 3, size=32, seed=6)
    on_gpu = metric(fused.cuda(), exposures.cuda())
    assert on_gpu.is_cuda
    np.testing.assert_allclose(on_gpu.cpu().numpy(), metric(fused, exposures).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", [qabf, normalized_mutual_information, gray_levels])
def test_strips_of_rows_score_as_the_whole_image(metric, monkeypatch):
    """Large photos are scored strip by strip to bound memory (a 24 MP bracket); the result is the whole image's."""
    import fusionkit.evaluation.fusion_metrics as module

    torch.manual_seed(5)
    exposures = torch.rand(2, 3, 3, 41, 29, dtype=torch.float64)
    fused = exposures.mean(1)
    args = (exposures,) if metric is gray_levels else (fused, exposures)
    whole = metric(*args)
    monkeypatch.setattr(module, "STRIP_PIXELS", 29 * 3 * 3 * 2)  # strips of a few rows, the last one shorter
    assert torch.allclose(metric(*args), whole, rtol=0, atol=1e-13)


def test_crushed_shadows_in_strips_is_the_whole_image(monkeypatch):
    """Scored strip by strip (large photos), the crushed-shadow fraction is the whole image's."""
    import fusionkit.evaluation.fusion_metrics as module

    torch.manual_seed(6)
    exposures = torch.rand(2, 2, 3, 37, 23, dtype=torch.float64) * torch.tensor([0.3, 1.0]).view(1, 2, 1, 1, 1)
    fused = exposures[:, 0] * 0.2
    whole = module.crushed_shadows(fused, exposures)
    assert whole.min() > 0
    monkeypatch.setattr(module, "STRIP_PIXELS", 23 * 3 * 2 * 3)
    assert torch.equal(module.crushed_shadows(fused, exposures), whole)
