"""Blur operator (deblur task): Gaussian or linear motion blur, kind and strength drawn per pair."""

from __future__ import annotations

import math

import cv2
import numpy as np

from senorita.operators.base import Params, randint, uniform


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of ``length`` pixels at ``angle_deg``."""
    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    half = (length - 1) / 2
    p0 = (round(c - dx * half), round(c - dy * half))
    p1 = (round(c + dx * half), round(c + dy * half))
    cv2.line(kernel, p0, p1, 1.0, 1)
    return kernel / kernel.sum()


class Blur:
    name = "blur"

    def draw(self, rng: np.random.Generator, cfg: dict, height: int, width: int) -> Params:
        kind = str(rng.choice(cfg["kinds"]))
        if kind == "gaussian":
            return {"kind": kind, "sigma": round(uniform(rng, cfg["sigma"]), 3)}
        return {
            "kind": kind,
            "length": randint(rng, cfg["motion_length"]),
            "angle": round(uniform(rng, [0.0, 180.0]), 1),
        }

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        if params["kind"] == "gaussian":
            sigma = params["sigma"]
            ksize = 2 * math.ceil(3 * sigma) + 1
            return np.stack([cv2.GaussianBlur(f, (ksize, ksize), sigma) for f in frames])
        kernel = motion_kernel(params["length"], params["angle"])
        return np.stack(
            [cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REFLECT) for f in frames]
        )
