"""MEF-SSIM of Ma, Zeng & Wang ("Perceptual Quality Assessment for Multi-Exposure Image Fusion",
IEEE TIP 2015), vectorised in torch; it matches the authors' MATLAB ``mef_ms_ssim`` to within 5e-7 on
real brackets (the rounding of the reference scores).

The MATLAB code loops over every 11x11 window; here each per-window quantity is rebuilt from local
moments. Per window, the exposures x_k get a box mean mu_k and contrast ed_k = ||x_k - mu_k|| + 0.001,
a consistency R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||, an exponent p = min(tan(pi R / 2), 10)
and weights w_k ~ (ed_k / 11)^p + eps. The desired patch r = sum_k a_k (x_k - mu_k) with a_k = w_k / ed_k,
rescaled to norm max_k ed_k, is compared with the fused patch f under a Gaussian window (sigma 1.5):
q = (2 cov(r, f) + C) / (var(r) + var(f) + C), C = (k * data_range)^2. As the a_k are constant within a
window, var(r) and cov(r, f) are quadratic forms of the exposures' local covariances. Scales come from
2x2 averaging (edge row/column repeated on odd sizes) and keeping every second pixel; the score is
prod_s Q_s ** (w_s / sum(w)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import fusion_metrics
from .fusion_metrics import gray_levels
from .metrics import MetricInputError

__all__ = ["matlab_rgb2gray", "mef_ssim", "mef_ssim_rgb"]

#: MATLAB's ``eps`` (float64 spacing at 1): the reference adds it to R and to the weights, whatever the dtype.
MATLAB_EPS = 2.220446049250313e-16
#: Added to each exposure's local contrast in the reference, "to avoid instability".
CONTRAST_OFFSET = 1e-3
#: Cap on the exponent p = tan(pi/2 * R); 10 already acts as taking the maximum-contrast exposure.
MAX_EXPONENT = 10.0
#: The authors' defaults: 11-px windows over three scales, weighted as in ``mef_ms_ssim``.
WINDOW = 11
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001)
#: The shortest side those defaults fit: the third scale still holds one window.
MIN_SIDE = WINDOW * 2 ** (len(SCALE_WEIGHTS) - 1)
#: Standard deviation of the Gaussian window of the SSIM comparison (MATLAB ``fspecial('gaussian', 11, 1.5)``).
GAUSSIAN_SIGMA = 1.5


def matlab_rgb2gray(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 1, H, W) float64 gray levels 0..255 as MATLAB ``rgb2gray`` gives
    for the 8-bit image."""
    return gray_levels(rgb).unsqueeze(-3)


def mef_ssim_rgb(fused: torch.Tensor, exposures: torch.Tensor) -> torch.Tensor:
    """Benchmark protocol: fused (N, 3, H, W) and exposures (N, K, 3, H, W) in [0, 1] -> (N,) float64 scores
    of ``mef_ssim`` with default parameters on ``matlab_rgb2gray`` images, as MATLAB ``mef_ms_ssim`` gives."""
    return mef_ssim(matlab_rgb2gray(fused).double(), matlab_rgb2gray(exposures).double())


def mef_ssim(
    fused: torch.Tensor,
    exposures: torch.Tensor,
    *,
    k: float = 0.03,
    window: int = WINDOW,
    scales: int = len(SCALE_WEIGHTS),
    weights: tuple[float, ...] = SCALE_WEIGHTS,
    data_range: float = 255.0,
) -> torch.Tensor:
    """Multi-scale MEF-SSIM per image: fused (N, 1, H, W), exposures (N, K, 1, H, W), K >= 1, gray in
    0..data_range -> (N,) scores in the input's dtype (at least float32). Differentiable with respect to
    ``fused``; per-scale scores are floored at the dtype's eps before the weighted product.

    float64 inputs on integer levels reproduce MATLAB ``mef_ms_ssim``; float32 suits a training loss.
    """
    if fused.dim() != 4 or fused.shape[1] != 1 or exposures.dim() != 5 or exposures.shape[2] != 1:
        raise ValueError(
            "expected fused (N, 1, H, W) and exposures (N, K, 1, H, W); "
            f"got {tuple(fused.shape)} and {tuple(exposures.shape)}"
        )
    if exposures.shape[0] != fused.shape[0] or exposures.shape[-2:] != fused.shape[-2:]:
        raise ValueError(f"batch or image size differ: {tuple(fused.shape)} vs {tuple(exposures.shape)}")
    if len(weights) != scales:
        raise ValueError(f"{scales} scales need {scales} weights, got {len(weights)}")
    if min(fused.shape[-2:]) / 2 ** (scales - 1) < window:
        raise MetricInputError(
            f"mef_ssim: {tuple(fused.shape[-2:])} images are too small for {scales} scales of {window}-px windows "
            f"(at least {window * 2 ** (scales - 1)} px a side)"
        )
    dtype = torch.promote_types(torch.promote_types(fused.dtype, exposures.dtype), torch.float32)
    # Centring changes no (co)variance; 0.5 * data_range keeps integer levels exact in float64 box sums.
    f = fused.to(dtype) - 0.5 * data_range
    x = exposures.to(dtype).squeeze(2) - 0.5 * data_range
    c = (k * data_range) ** 2
    per_scale = []
    for s in range(scales):
        if s:
            f, x = _downsample(f), _downsample(x)
        per_scale.append(_mean_quality(f, x, window, c))
    # A fused image anti-correlated with the desired structure can score below 0 at a scale, where MATLAB
    # returns a complex number; the floor keeps the product (and a loss's gradients) finite.
    q = torch.stack(per_scale, -1).clamp_min(torch.finfo(dtype).eps)
    w = torch.tensor(weights, dtype=dtype, device=q.device)
    return q.pow(w / w.sum()).prod(-1)


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)``."""
    x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def _filter(image: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Correlate (..., H, W) with the separable kernel taps x taps, 'valid' region. Shifted, scaled
    slices accumulated in place: on CPU this beats conv2d (no float64 fast path) and stays in cache."""
    for dim in (-1, -2):
        size = image.shape[dim] - len(taps) + 1
        out = image.narrow(dim, 0, size) * taps[0]
        for shift, tap in enumerate(taps[1:], 1):
            out.add_(image.narrow(dim, shift, size), alpha=tap)
        image = out
    return image


def _gaussian_taps(window: int) -> list[float]:
    """1-D factor of MATLAB ``fspecial('gaussian', window, 1.5)``."""
    taps = [math.exp(-((t - (window - 1) / 2) ** 2) / (2 * GAUSSIAN_SIGMA**2)) for t in range(window)]
    total = sum(taps)
    return [t / total for t in taps]


def _sqrt(t: torch.Tensor) -> torch.Tensor:
    """Square root of a quantity >= 0 up to rounding; the floor keeps gradients finite at 0."""
    return t.clamp_min(torch.finfo(t.dtype).tiny).sqrt()


def _pairwise(a: list[torch.Tensor], m: dict) -> torch.Tensor:
    """sum_kl a_k a_l m_kl for a symmetric m given on pairs k <= l."""
    return sum(m[i, j] * (a[i] * a[j] if i == j else 2 * a[i] * a[j]) for i, j in m)


def _mean_quality(f: torch.Tensor, x: torch.Tensor, window: int, c: float) -> torch.Tensor:
    """MEF-SSIM at one scale: fused f (N, 1, H, W), exposures x (N, K, H, W) -> (N,) mean quality map,
    gathered over strips of rows that overlap by ``window - 1`` so each window is whole."""
    rows, cols = f.shape[-2] - window + 1, f.shape[-1] - window + 1
    strip = max(1, fusion_metrics.STRIP_PIXELS // max(1, cols * x.shape[1]))
    total = 0
    for top in range(0, rows, strip):
        bottom = min(rows, top + strip) + window - 1
        total = total + _quality_map(f[..., top:bottom, :], x[..., top:bottom, :], window, c).sum((-2, -1))
    return total / (rows * cols)


def _quality_map(f: torch.Tensor, x: torch.Tensor, window: int, c: float) -> torch.Tensor:
    """MEF-SSIM's quality of each window ('valid' region): fused f (N, 1, H, W), exposures x (N, K, H, W)."""
    f, x = f[:, 0], list(x.unbind(1))
    pairs = [(i, j) for i in range(len(x)) for j in range(i, len(x))]

    # Box window (sums S): D_kl = n S_kl - S_k S_l = n^2 cov_kl, exact for integer levels in float64.
    # Gaussian window (means G): covariances of exposures and fused image.
    box, gauss = [1.0] * window, _gaussian_taps(window)
    s1 = [_filter(xi, box) for xi in x]
    gx = [_filter(xi, gauss) for xi in x]
    d, cov = {}, {}
    for i, j in pairs:
        xx = x[i] * x[j]
        d[i, j] = window**2 * _filter(xx, box) - s1[i] * s1[j]
        cov[i, j] = _filter(xx, gauss) - gx[i] * gx[j]
    gf = _filter(f, gauss)
    cov_xf = [_filter(xi * f, gauss) - gxi * gf for xi, gxi in zip(x, gx)]
    var_f = _filter(f * f, gauss) - gf * gf

    norms = [_sqrt(d[i, i]) / window for i in range(len(x))]  # ||x_k - mu_k||
    ed = [v + CONTRAST_OFFSET for v in norms]
    consistency = (_sqrt(_pairwise([1.0] * len(x), d)) / window + MATLAB_EPS) / (sum(norms) + MATLAB_EPS)
    # p = min(tan(pi/2 R), 10) as 1/tan of the complementary angle: R >= 1 gives 10 as in MATLAB
    # (there R -> 1 - eps), and float32, whose pi/2 rounds up, cannot flip the sign.
    angle = (math.pi / 2 * (1 - consistency)).clamp_min(math.atan(1 / MAX_EXPONENT))
    p = 1 / torch.tan(angle)
    wmap = [(e / window).pow(p) + MATLAB_EPS for e in ed]
    total = sum(wmap)
    a = [w / total / e for w, e in zip(wmap, ed)]  # r = sum_k a_k (x_k - mu_k) before rescaling
    r_norm_sq = _pairwise(a, d) / window**2
    var_r = _pairwise(a, cov)
    cov_rf = sum(ai * ci for ai, ci in zip(a, cov_xf))

    # r is rescaled to norm max_ed, unless it is zero (MATLAB: "if norm(rBlock(:)) > 0").
    scale = torch.where(r_norm_sq > 0, torch.stack(ed).amax(0) / _sqrt(r_norm_sq), 0)
    return (2 * scale * cov_rf + c) / (scale * scale * var_r + var_f + c)
