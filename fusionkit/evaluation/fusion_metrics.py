"""No-reference fusion quality metrics: Petrović–Xydeas Q^AB/F and Hossny's normalised mutual information.

Multi-exposure fusion papers (and the MEFB benchmark) report these beside MEF-SSIM: both score a fused
image by how much of its inputs it keeps, edges for Q^AB/F and grey-level information for Q_MI, with no
ground truth. Both read 8-bit grey levels, as the MATLAB benchmark code does: each RGB channel quantised
like ``im2uint8`` (round(255 x)), then MATLAB ``rgb2gray``'s BT.601 luma weights, rounded to a level.
Everything runs in float64 on the inputs' device and scores each image of the batch: shape (N,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..colour import MATLAB_GRAY, brightest_exposure, gray
from ..models.shadow_fill import SHOWN
from .metrics import MetricInputError

#: Q^AB/F constants of Xydeas & Petrović (2000): sigmoid gain Gamma, slope k, centre sigma for the
#: strength (g) and orientation (a) preservation, and the weight exponent L (w = g**L).
GAMMA_G, K_G, SIGMA_G = 0.9994, -15.0, 0.5
GAMMA_A, K_A, SIGMA_A = 0.9879, -22.0, 0.8
L = 1
#: The two sigmoids' constants, (Gamma, k, sigma) for strength then orientation, for losses that copy the metric.
QABF_CONSTANTS = ((GAMMA_G, K_G, SIGMA_G), (GAMMA_A, K_A, SIGMA_A))

#: Pixels (times images) a metric works on at once: large photos are scored in strips of rows, each with
#: the neighbours its filters need, so a 24-megapixel bracket needs a few GB at most and scores the same.
STRIP_PIXELS = 1 << 20


def _strip_rows(images: torch.Tensor) -> int:
    """Rows per strip for ``images`` (..., H, W): at least one, at most STRIP_PIXELS values."""
    return max(1, STRIP_PIXELS // max(1, images[..., 0, :].numel()))


def gray_levels(images: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> integer grey levels 0..255 (..., H, W) in float64, as MATLAB's
    ``rgb2gray(im2uint8(x))`` (rounding half away from zero)."""
    weights = torch.tensor(MATLAB_GRAY, dtype=torch.float64, device=images.device)
    levels = torch.empty(images.shape[:-3] + images.shape[-2:], dtype=torch.float64, device=images.device)
    rows = _strip_rows(images)
    for top in range(0, images.shape[-2], rows):
        rgb = images[..., top : top + rows, :].to(torch.float64).clamp(0, 1).mul_(255).add_(0.5).floor_()
        levels[..., top : top + rows, :] = torch.einsum("...chw,c->...hw", rgb, weights).add_(0.5).floor_()
    return levels


def _gray_inputs(fused: torch.Tensor, exposures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey levels of ``fused`` (N, 3, H, W) -> (N, H, W) and ``exposures`` (N, K, 3, H, W) -> (N, K, H, W)."""
    if (
        fused.dim() != 4 or fused.shape[1] != 3 or exposures.dim() != 5
        or exposures.shape[0] != fused.shape[0] or exposures.shape[1] < 1 or exposures.shape[2:] != fused.shape[1:]
    ):
        raise MetricInputError(
            "fusion metrics take fused (N, 3, H, W) and exposures (N, K>=1, 3, H, W) of the same N, H, W; "
            f"got {tuple(fused.shape)} and {tuple(exposures.shape)}"
        )
    return gray_levels(fused), gray_levels(exposures)


def _edges(padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel edge strength g and orientation alpha = atan(s_y / s_x) in [-pi/2, pi/2] of (..., H, W) images
    given with a border of one pixel on each side (zeros at the image's edges, neighbours inside it).

    As Qabf.m's conv2(img, h, 'same') with h = [-1 0 1; -2 0 2; -1 0 1] for s_x and [1 2 1; 0 0 0; -1 -2 -1]
    for s_y: zero border, and conv2 flips the kernels, so s_x = left - right and s_y = below - above. The
    signs matter only where s_x = 0, whose orientation is +pi/2 whatever the sign of s_y. Sums of shifted
    copies rather than a convolution: exact on integer levels, about twice as fast as float64 conv2d on a CPU.
    """
    across = padded[..., :-2] - padded[..., 2:]
    down = padded[..., 2:, :] - padded[..., :-2, :]
    sx = across[..., :-2, :] + 2 * across[..., 1:-1, :] + across[..., 2:, :]
    sy = down[..., :-2] + 2 * down[..., 1:-1] + down[..., 2:]
    return torch.hypot(sx, sy), torch.where(sx == 0, math.pi / 2, torch.atan(sy / sx))


def qabf(fused: torch.Tensor, exposures: torch.Tensor) -> torch.Tensor:
    """Petrović & Xydeas' edge-preservation score Q^AB/F per image, shape (N,), at most Q_g(1) Q_a(1) = 0.9748.

    C. S. Xydeas and V. Petrović, "Objective image fusion performance measure", Electronics Letters
    36(4), 2000. Per pixel and input k: relative strength G = min(g_k, g_F) / max(g_k, g_F) and
    orientation A = 1 - |alpha_k - alpha_F| / (pi/2) pass through sigmoids, Q^kF = Q_g(G) Q_a(A), and
    the score is sum_k sum_px Q^kF g_k**L / sum_k sum_px g_k**L. Conventions of the circulating
    ``Qabf.m`` (VIFB, MEFB): zero-padded Sobel, alpha = pi/2 where s_x = 0, no wrap of the angle
    difference. One deliberate difference: equal strengths give G = 1 as in the paper, where
    Qabf.m sets G = g_F (a bug that makes G depend on the intensity scale). No edges anywhere in
    the inputs give 0/0 = NaN.
    """
    f, x = _gray_inputs(fused, exposures)
    padded = F.pad(torch.cat((f[:, None], x), dim=1), (1, 1, 1, 1))
    kept = total = 0
    rows = _strip_rows(padded)
    for top in range(0, padded.shape[-2] - 2, rows):
        g, alpha = _edges(padded[..., top : top + rows + 2, :])
        g_f, a_f, g_x, a_x = g[:, :1], alpha[:, :1], g[:, 1:], alpha[:, 1:]
        strength = torch.where(g_x == g_f, 1.0, torch.minimum(g_x, g_f) / torch.maximum(g_x, g_f))
        orientation = 1 - (a_x - a_f).abs() / (math.pi / 2)
        q_g = GAMMA_G / (1 + torch.exp(K_G * (strength - SIGMA_G)))
        q_a = GAMMA_A / (1 + torch.exp(K_A * (orientation - SIGMA_A)))
        weight = g_x**L
        kept = kept + (q_g * q_a * weight).sum(dim=(1, 2, 3))
        total = total + weight.sum(dim=(1, 2, 3))
    return kept / total


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(dim=-1)


def normalized_mutual_information(fused: torch.Tensor, exposures: torch.Tensor) -> torch.Tensor:
    """Hossny's normalised mutual information Q_MI per image, shape (N,), in [0, K].

    M. Hossny, S. Nahavandi and D. Creighton, "Comments on 'Information measure for performance of
    image fusion'", Electronics Letters 44(18), 2008: Q_MI = 2 sum_k MI(k, F) / (H(k) + H(F)), from
    256-bin joint histograms of the grey levels. Plain MI(A, F) + MI(B, F) rewards a fused image that
    copies the input of higher entropy (MI(A, A) = H(A)); dividing each term by H(k) + H(F) removes
    that. Given the same grey images it equals MEFB's metricsNMI.m, whose min-max stretch maps levels
    one to one and so leaves entropies unchanged. A flat input and a flat fused image give 0/0 = NaN.
    """
    f, x = _gray_inputs(fused, exposures)
    n, k = x.shape[:2]
    pixels = f[0].numel()
    image = torch.arange(n * k, device=x.device).view(n, k, 1)
    counts = 0
    rows = _strip_rows(x)
    for top in range(0, f.shape[-2], rows):
        levels_x, levels_f = x[..., top : top + rows, :].long().flatten(2), f[..., top : top + rows, :].long().flatten(1)
        pair = (image * 256 + levels_x) * 256 + levels_f[:, None]
        counts = counts + torch.bincount(pair.flatten(), minlength=n * k * 65536)
    joint = counts.view(n, k, 256, 256).to(torch.float64) / pixels
    h_x, h_f, h_xf = _entropy(joint.sum(dim=3)), _entropy(joint.sum(dim=2)), _entropy(joint.flatten(2))
    return (2 * (h_x + h_f - h_xf) / (h_x + h_f)).sum(dim=1)


def crushed_shadows(fused: torch.Tensor, exposures: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels (N,) that the fusion leaves below 2 % luma where the brightest exposure shows
    them between 10 % and 90 %: shadows the bracket captured but the fusion turned black (lower is better).

    Luma is BT.601 in [0, 1]; the brightest exposure is the one of highest mean luma.
    """
    rows = _strip_rows(exposures)
    brightest = brightest_exposure(exposures, rows)
    crushed = 0
    for top in range(0, exposures.shape[-2], rows):
        lit = gray(*brightest[..., top : top + rows, :].double().unbind(-3))
        dark = gray(*fused[..., top : top + rows, :].double().unbind(-3)) < 0.02
        crushed = crushed + (dark & (lit >= SHOWN[0]) & (lit <= SHOWN[1])).sum((-2, -1))
    return crushed.double() / fused[0, 0].numel()


def brightest_luma(exposures: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (N, H, W) of the exposure of highest mean luma in (N, K, 3, H, W) exposures."""
    return gray(*brightest_exposure(exposures).unbind(-3))
