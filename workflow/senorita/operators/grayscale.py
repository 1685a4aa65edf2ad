"""Grayscale operator (colorization task): luma (BT.601) copied to three equal channels."""

from __future__ import annotations

import cv2
import numpy as np

from senorita.operators.base import Params


class Grayscale:
    name = "grayscale"

    def draw(self, rng: np.random.Generator, cfg: dict, height: int, width: int) -> Params:
        return {"weights": "bt601"}

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
        return np.repeat(gray[..., None], 3, axis=-1)
