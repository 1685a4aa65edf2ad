"""Canny operator (canny_to_video task): binary edge video, white edges on black."""

from __future__ import annotations

import cv2
import numpy as np

from senorita.operators.base import Params, randint


def canny_edges(frame: np.ndarray, low: int, high: int) -> np.ndarray:
    """Canny of one RGB frame's luma: an (H, W) uint8 array of 0 and 255."""
    return cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), low, high)


class Canny:
    name = "canny"

    def draw(self, rng: np.random.Generator, cfg: dict, height: int, width: int) -> Params:
        low = randint(rng, cfg["low"])
        high = max(randint(rng, cfg["high"]), low + 1)
        return {"low": low, "high": high}

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        edges = np.stack([canny_edges(f, params["low"], params["high"]) for f in frames])
        return np.repeat(edges[..., None], 3, axis=-1)
