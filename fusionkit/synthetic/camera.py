"""An emulated camera pipeline: renders a photograph as a camera would have shot it at a relative EV.

Like Afifi et al.'s data (raw images rendered at several EVs by a camera pipeline, compared with
an expert's retouch), the rendering differs from the ground truth even at EV 0: another white
balance, more saturation, an S-shaped tone curve, sensor noise, clipping and 8 bits (the
sample set then stores it as JPEG).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..colour import LINEAR_LUMA, linear_to_srgb, srgb_to_linear


@dataclass(frozen=True)
class CameraLook:
    """How the camera's rendering of one scene departs from the ground truth."""

    wb_gains: tuple[float, float, float]  # per-channel gains on linear RGB (green = 1)
    saturation: float  # 1 = unchanged; > 1 pushes colours away from grey
    exposure_bias: float  # EV the camera's "0" is off by (metering differs from the expert)
    contrast: float  # S-curve strength in [0, 1)
    shot_noise: float  # variance per unit of signal (linear, at the sensor)
    read_noise: float  # standard deviation of the signal-independent noise


def random_look(rng: np.random.Generator) -> CameraLook:
    """A plausible camera rendering, drawn per scene (warm/cool cast, punchy colours and contrast)."""
    warmth = rng.uniform(-0.12, 0.12)
    return CameraLook(
        wb_gains=(1 + warmth + rng.uniform(-0.03, 0.03), 1.0, 1 - warmth + rng.uniform(-0.03, 0.03)),
        saturation=rng.uniform(1.15, 1.4),
        exposure_bias=rng.uniform(-0.3, 0.3),
        contrast=rng.uniform(0.45, 0.75),
        shot_noise=rng.uniform(1e-4, 3e-4),
        read_noise=rng.uniform(5e-4, 1.5e-3),
    )


#: 8-bit sRGB code -> linear value.
_LINEAR = srgb_to_linear(np.arange(256) / 255).astype(np.float32)
#: Sensor values are quantised to 16 bits before the tone curve (a table): finer than 8-bit output needs.
_SENSOR_LEVELS = 65535


def render_exposure(photo: np.ndarray, ev: float, look: CameraLook, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W, 3) uint8 as the camera renders it at relative ``ev``.

    Linearise (inverse sRGB), colour-render (white balance x saturation matrix), scale by
    2^(ev + bias), add shot + read noise, clip at sensor saturation, then the tone curve: sRGB
    encoding followed by an S-curve, and 8 bits.
    """
    s = look.saturation
    colour = np.diag(look.wb_gains) @ (s * np.eye(3) + (1 - s) * np.outer(np.ones(3), LINEAR_LUMA))
    colour *= 2.0 ** (ev + look.exposure_bias)
    signal = _LINEAR[photo] @ colour.T.astype(np.float32)
    sigma = np.sqrt(look.shot_noise * np.maximum(signal, 0) + look.read_noise**2)
    signal += sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    levels = np.rint(np.clip(signal, 0, 1) * _SENSOR_LEVELS).astype(np.uint16)
    return _tone_table(look.contrast)[levels]


@lru_cache(maxsize=8)
def _tone_table(contrast: float) -> np.ndarray:
    """Sensor level -> 8-bit output: sRGB encoding, then an S-curve (monotone for contrast < 1)."""
    tone = linear_to_srgb(np.arange(_SENSOR_LEVELS + 1) / _SENSOR_LEVELS)
    tone = tone - contrast * np.sin(2 * np.pi * tone) / (2 * np.pi)
    return np.rint(np.clip(tone, 0, 1) * 255).astype(np.uint8)
