"""Downsize operator (upscale task): the source is the clip made smaller by a drawn factor."""

from __future__ import annotations

import cv2
import numpy as np

from senorita.operators.base import Params, even

INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
}


class Downsize:
    name = "downsize"

    def draw(self, rng: np.random.Generator, cfg: dict, height: int, width: int) -> Params:
        factor = int(rng.choice(cfg["factors"]))
        return {
            "factor": factor,
            "height": even(height / factor),
            "width": even(width / factor),
            "interpolation": cfg["interpolation"],
        }

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        size = (params["width"], params["height"])
        interp = INTERPOLATION[params["interpolation"]]
        return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])
