"""Cut operators: a border cut (outpainting) and a hole cut (inpainting).

Both blank a region of every frame with a fill value; the region is the same in every frame and
is fully described by the parameters, so ``region_mask`` rebuilds it exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from senorita.operators.base import Params, even, randint, uniform


def region_mask(params: Params, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of the pixels the cut blanks."""
    if params["shape"] == "border":
        keep = np.zeros((height, width), bool)
        x, y, w, h = params["keep"]
        keep[y : y + h, x : x + w] = True
        return ~keep
    if params["shape"] == "rectangle":
        mask = np.zeros((height, width), bool)
        x, y, w, h = params["rect"]
        mask[y : y + h, x : x + w] = True
        return mask
    canvas = np.zeros((height, width), np.uint8)
    for stroke in params["strokes"]:
        pts = np.array(stroke["points"], np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, 1, thickness=stroke["width"], lineType=cv2.LINE_8)
    return canvas.astype(bool)


def _blank(frames: np.ndarray, mask: np.ndarray, fill: int) -> np.ndarray:
    out = frames.copy()
    out[:, mask] = fill
    return out


class BorderCut:
    """Keep an inner rectangle, blank the border around it."""

    name = "border_cut"

    def draw(self, rng: np.random.Generator, cfg: dict, height: int, width: int) -> Params:
        h = min(height, even(height * uniform(rng, cfg["keep_fraction"])))
        w = min(width, even(width * uniform(rng, cfg["keep_fraction"])))
        y = 2 * int(rng.integers(0, (height - h) // 2 + 1))
        x = 2 * int(rng.integers(0, (width - w) // 2 + 1))
        return {"shape": "border", "keep": [x, y, w, h], "fill": cfg["fill"]}

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        _, height, width, _ = frames.shape
        return _blank(frames, region_mask(params, height, width), params["fill"])


class HoleCut:
    """Blank a rectangle or free-form brush strokes inside the frame."""

    name = "hole_cut"

    def draw(self, rng: np.random.Generator, cfg: dict, height: int, width: int) -> Params:
        shape = str(rng.choice(cfg["shapes"]))
        if shape == "rectangle":
            area = uniform(rng, cfg["hole_fraction"]) * height * width
            aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))  # w / h
            h = min(height - 2, even((area / aspect) ** 0.5))
            w = min(width - 2, even((area * aspect) ** 0.5))
            y = 2 * int(rng.integers(0, (height - h) // 2 + 1))
            x = 2 * int(rng.integers(0, (width - w) // 2 + 1))
            params: Params = {"shape": shape, "rect": [x, y, w, h]}
        else:
            params = {"shape": "freeform", "strokes": self._strokes(rng, cfg, height, width)}
        params["fill"] = cfg["fill"]
        params["hole_fraction"] = round(float(region_mask(params, height, width).mean()), 5)
        return params

    @staticmethod
    def _strokes(rng: np.random.Generator, cfg: dict, height: int, width: int) -> list[dict]:
        """Random-walk brush strokes, in the manner of free-form inpainting masks."""
        strokes = []
        for _ in range(randint(rng, cfg["strokes"])):
            width_px = randint(rng, cfg["stroke_width"])
            x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
            points = [[round(x), round(y)]]
            for _ in range(randint(rng, [3, 6])):
                angle = rng.uniform(0, 2 * np.pi)
                step = rng.uniform(0.1, 0.3) * min(height, width)
                x = float(np.clip(x + step * np.cos(angle), 0, width - 1))
                y = float(np.clip(y + step * np.sin(angle), 0, height - 1))
                points.append([round(x), round(y)])
            strokes.append({"points": points, "width": width_px})
        return strokes

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        _, height, width, _ = frames.shape
        return _blank(frames, region_mask(params, height, width), params["fill"])
