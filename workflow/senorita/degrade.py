"""A seeded Real-ESRGAN-style degradation of a video: what the super-resolver learns to undo.

The chain, per clip (``degrade``): Gaussian blur at the high resolution, a downscale by a factor
drawn from ``scale`` with an interpolation drawn from ``interpolations``, Gaussian noise (colour,
or the same on the three channels with probability ``gray_noise``), JPEG compression of every
frame (OpenCV; far cheaper than an H.264 round trip through ffmpeg and as blocky), then the
resize back to the high resolution that the super-resolver pipeline applies to its input
(``senorita.experts.super_resolver.upscale``, bicubic). This is the classical degradation model,
y = JPEG((x ⊗ k)↓s + n), of Real-ESRGAN's first order (Wang et al. 2021).

Degradation parameters are drawn once per clip (a real video's blur, scale and compression
are the same in every frame); the noise is drawn per frame. Everything comes from the ``rng``
passed in: the same generator state gives the same frames (training draws it from the step's
seed, so a resumed run sees the same inputs).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

INTERPOLATIONS = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}

# The chain's parameters (the super-resolver's ``train.degradation``); ranges are [low, high],
# drawn uniformly.
DEFAULTS: dict[str, Any] = {
    "scale": [2.0, 4.0],  # downscale factor; the experts' 336 × 592 is 2 × below 672 × 1184
    "interpolations": ["area", "bilinear", "bicubic"],
    "blur_sigma": [0.2, 3.0],  # Gaussian blur before the downscale, in high-resolution pixels
    "noise_sigma": [1.0, 15.0],  # Gaussian noise after it, on the 0..255 scale
    "gray_noise": 0.4,  # probability that the noise is the same on R, G and B
    "jpeg_quality": [30, 95],
}


def degradation_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULTS`` updated by ``params``; an unknown key or interpolation is an error."""
    params = dict(params or {})
    if unknown := set(params) - set(DEFAULTS):
        raise ValueError(f"unknown degradation parameters: {sorted(unknown)}")
    merged = {**DEFAULTS, **params}
    if bad := set(merged["interpolations"]) - set(INTERPOLATIONS):
        raise ValueError(f"unknown interpolations {sorted(bad)}: one of {sorted(INTERPOLATIONS)}")
    if merged["scale"][0] < 1:
        raise ValueError(f"degradation scale {merged['scale']}: a downscale is at least 1")
    return merged


def draw_degradation(rng: np.random.Generator, params: dict[str, Any] | None = None) -> dict:
    """One clip's degradation: scale, interpolation, blur sigma, noise sigma and kind, JPEG
    quality (what ``degrade`` applies; a sample can log it)."""
    p = degradation_params(params)
    return {
        "scale": float(rng.uniform(*p["scale"])),
        "interpolation": p["interpolations"][int(rng.integers(len(p["interpolations"])))],
        "blur_sigma": float(rng.uniform(*p["blur_sigma"])),
        "noise_sigma": float(rng.uniform(*p["noise_sigma"])),
        "gray_noise": bool(rng.random() < p["gray_noise"]),
        "jpeg_quality": int(rng.integers(p["jpeg_quality"][0], p["jpeg_quality"][1] + 1)),
    }


def degrade(
    frames: np.ndarray,
    rng: np.random.Generator,
    params: dict[str, Any] | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """``frames`` (T, H, W, 3) uint8, degraded and resized back to ``size`` (height, width;
    default H × W) as the super-resolver's input is: (T, *size, 3) uint8."""
    from senorita.experts.super_resolver import upscale

    d = draw_degradation(rng, params)
    t, height, width = frames.shape[:3]
    low = (max(1, round(height / d["scale"])), max(1, round(width / d["scale"])))
    out = np.empty((t, *low, 3), np.uint8)
    for i, frame in enumerate(frames):
        x = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), d["blur_sigma"])
        x = cv2.resize(x, low[::-1], interpolation=INTERPOLATIONS[d["interpolation"]])
        shape = (*low, 1) if d["gray_noise"] else (*low, 3)
        x = x + rng.normal(0.0, d["noise_sigma"], shape).astype(np.float32)
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        # OpenCV's JPEG is BGR: its YCbCr conversion must see the channels in that order.
        ok, data = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, d["jpeg_quality"]])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out[i] = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return upscale(out, *(size or (height, width)))
