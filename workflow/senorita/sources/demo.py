"""The embedded default source: short synthetic videos generated on the fly.

Each video is a textured background seen through a moving camera (pan, or pan and zoom) with a few
textured shapes moving across it; one in three has a hard shot cut half way, so clip selection has
a cut to avoid. Sizes, aspect ratios and frame rates vary. Everything is drawn from a seed, so the
same config gives the same bytes to the pixel (the encoder is deterministic too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from senorita.ids import rng_for
from senorita.sources import CATALOGUE_COLUMNS
from senorita.video import write_frames

# (width, height, fps, seconds): landscape, portrait and odd frame rates on purpose.
FORMATS = [
    (640, 360, 24, 5.0),
    (640, 360, 25, 7.0),
    (360, 640, 30, 4.0),
    (854, 480, 16, 6.0),
    (480, 270, 30, 6.0),
    (768, 432, 20, 6.0),
]


@dataclass
class Shape:
    kind: str  # ellipse | rectangle | star
    size: float  # radius as a fraction of the frame's shorter side
    colour: np.ndarray
    path: np.ndarray  # (2, 2): start and end centre, as fractions of the frame
    wobble: float
    texture_period: int


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth coloured noise plus stripes: enough detail for edges, blur and scene detection."""
    noise = rng.random((max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    smooth = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(14, 40)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    palette = rng.uniform(40, 220, size=(2, 3)).astype(np.float32)
    mix = np.clip(0.65 * smooth + 0.35 * stripes[..., None], 0, 1)
    img = palette[0] * (1 - mix) + palette[1] * mix
    return np.clip(img, 0, 255).astype(np.uint8)


def _shapes(rng: np.random.Generator, count: int) -> list[Shape]:
    return [
        Shape(
            kind=str(rng.choice(["ellipse", "rectangle", "star"])),
            size=float(rng.uniform(0.08, 0.2)),
            colour=rng.uniform(0, 255, 3),
            path=rng.uniform(0.15, 0.85, size=(2, 2)),
            wobble=float(rng.uniform(0.0, 0.08)),
            texture_period=int(rng.integers(4, 12)),
        )
        for _ in range(count)
    ]


def _shape_polygon(shape: Shape, centre: np.ndarray, radius: float, t: float) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 40 if shape.kind == "ellipse" else 11, endpoint=False)
    angles = angles + t * 1.5  # the shape turns as it moves
    if shape.kind == "ellipse":
        r = np.stack([radius * 1.3 * np.cos(angles), radius * 0.8 * np.sin(angles)], 1)
    elif shape.kind == "rectangle":
        corners = np.array([[-1.2, -0.8], [1.2, -0.8], [1.2, 0.8], [-1.2, 0.8]]) * radius
        c, s = np.cos(t), np.sin(t)
        r = corners @ np.array([[c, s], [-s, c]])
    else:
        radii = np.where(np.arange(angles.size) % 2 == 0, radius, radius * 0.45)
        r = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    return (centre + r).astype(np.int32)


class _Scene:
    """A background canvas, a camera path over it and moving shapes."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.width, self.height = width, height
        self.canvas = _texture(rng, int(height * 1.6), int(width * 1.6))
        self.shapes = _shapes(rng, int(rng.integers(2, 4)))
        self.zoom = float(rng.uniform(0.0, 0.25))
        self.pan = rng.uniform(0, 1, size=(2, 2))  # start and end of the camera centre
        yy, xx = np.mgrid[0:height, 0:width]
        self.fills = []  # each shape's checkered texture, fixed to the shape's frame
        for shape in self.shapes:
            checker = ((xx // shape.texture_period + yy // shape.texture_period) % 2)[..., None]
            self.fills.append(
                np.clip(shape.colour * (0.6 + 0.4 * checker), 0, 255).astype(np.uint8)
            )

    def frame(self, t: float) -> np.ndarray:
        ch, cw = self.canvas.shape[:2]
        scale = 1.0 - self.zoom * t  # zooming in over the shot
        vh, vw = self.height * scale * 1.2, self.width * scale * 1.2
        cx, cy = (self.pan[0] + (self.pan[1] - self.pan[0]) * t) * [cw - vw, ch - vh]
        view = self.canvas[int(cy) : int(cy + vh), int(cx) : int(cx + vw)]
        img = cv2.resize(view, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        side = min(self.width, self.height)
        for shape, fill in zip(self.shapes, self.fills, strict=True):
            pos = shape.path[0] + (shape.path[1] - shape.path[0]) * t
            pos = pos + shape.wobble * np.sin(2 * np.pi * t * np.array([2.0, 3.0]))
            centre = pos * [self.width, self.height]
            mask = np.zeros((self.height, self.width), np.uint8)
            cv2.fillPoly(mask, [_shape_polygon(shape, centre, shape.size * side, t)], 1)
            cv2.copyTo(fill, mask, img)
        return img


def generate_video(path: Path, index: int, seed: int) -> dict[str, Any]:
    """Write demo video ``index`` to ``path``; return what was generated."""
    width, height, fps, seconds = FORMATS[index % len(FORMATS)]
    rng = rng_for("demo", seed, index)
    n = round(fps * seconds)
    cut = n // 2 if index % 3 == 1 else None
    scenes = [_Scene(rng, width, height), _Scene(rng, width, height)]
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        if cut is not None and i >= cut:
            frames[i] = scenes[1].frame((i - cut) / max(1, n - cut - 1))
        else:
            frames[i] = scenes[0].frame(i / max(1, (cut or n) - 1))
    write_frames(path, frames, fps)
    return {"width": width, "height": height, "fps": fps, "frames": n, "cut_at": cut}


class DemoSource:
    kind = "demo"

    def __init__(self, cfg: dict[str, Any], folder: Path):
        self.count = cfg["videos"]
        self.seed = cfg["seed"]
        self.folder = folder

    def catalogue(self) -> pd.DataFrame:
        rows = []
        for index in range(self.count):
            path = self.folder / f"demo_{index:03d}.mp4"
            facts = generate_video(path, index, self.seed)
            rows.append(
                {
                    "video_id": f"demo-{self.seed}-{index:03d}",
                    "path": str(path.resolve()),
                    "origin": "demo",
                    "licence": "CC0-1.0 (generated)",
                    "author": "senorita demo generator",
                    "author_url": None,
                    "page_url": None,
                    "source_name": path.name,
                    "demo_cut_frame": facts["cut_at"],
                }
            )
        return pd.DataFrame(rows, columns=[*CATALOGUE_COLUMNS, "source_name", "demo_cut_frame"])

    def materialise(self, row: dict[str, Any]) -> Path:
        return Path(row["path"])
