"""Fake scribbles from HED soft edges, the way ControlNet's annotator makes them.

1. Non-maximum suppression: smooth the HED map (Gaussian, ``nms_sigma``), keep a pixel where it is
   the maximum along one of four directions (horizontal, vertical, two diagonals), and threshold
   the kept ridge values at ``threshold`` (0..255).
2. Thinning: peel the binary ridges to one-pixel-wide curves with hit-or-miss thinning, then prune
   one-pixel spurs.
3. Strokes: redraw the thin curves as scribble strokes: a Gaussian blur (``stroke_sigma``) and any
   value above 4 becomes 255 (ControlNet's fake scribble uses sigma 3). ``stroke_sigma`` 0 keeps
   the one-pixel curves.

The result is binary: 0 background, 255 stroke.
"""

from __future__ import annotations

import cv2
import numpy as np

# Directional 3×3 neighbourhoods for the ridge test.
_LINES = [
    np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], np.uint8),
    np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], np.uint8),
    np.eye(3, dtype=np.uint8),
    np.fliplr(np.eye(3, dtype=np.uint8)).copy(),
]


def _rotations(kernels: list[list[list[int]]]) -> list[np.ndarray]:
    """Each hit-or-miss kernel (1 foreground, -1 background, 0 either) in four orientations."""
    base = [np.array(k, np.int32) for k in kernels]
    return [np.ascontiguousarray(np.rot90(k, r)) for r in range(4) for k in base]


# Classic thinning structuring elements (an edge and a corner), in all four orientations.
_THIN = _rotations(
    [
        [[-1, -1, -1], [0, 1, 0], [1, 1, 1]],
        [[0, -1, -1], [1, 1, -1], [0, 1, 0]],
    ]
)
# Endpoints of one-pixel spurs.
_PRUNE = _rotations(
    [
        [[-1, -1, -1], [-1, 1, -1], [0, 0, -1]],
        [[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]],
    ]
)


def ridge_nms(edges: np.ndarray, threshold: float, sigma: float) -> np.ndarray:
    """Binary (0/255) ridges of a uint8 soft-edge map: directional maxima above ``threshold``."""
    smooth = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), sigma) if sigma > 0 else edges
    smooth = smooth.astype(np.float32)
    ridge = np.zeros_like(smooth)
    for kernel in _LINES:
        is_max = cv2.dilate(smooth, kernel) == smooth
        ridge[is_max] = smooth[is_max]
    return np.where(ridge > threshold, 255, 0).astype(np.uint8)


def _hit_or_miss_pass(binary: np.ndarray, kernels: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    changed = False
    for kernel in kernels:
        hits = cv2.morphologyEx(binary, cv2.MORPH_HITMISS, kernel) > 0
        if hits.any():
            binary[hits] = 0
            changed = True
    return binary, changed


def thin(binary: np.ndarray, max_passes: int = 64, prune: bool = True) -> np.ndarray:
    """One-pixel-wide skeleton of a 0/255 image by repeated hit-or-miss thinning."""
    out = np.where(binary > 127, 255, 0).astype(np.uint8)
    for _ in range(max_passes):
        out, changed = _hit_or_miss_pass(out, _THIN)
        if not changed:
            break
    if prune:
        out, _ = _hit_or_miss_pass(out, _PRUNE)
    return out


def strokes(curves: np.ndarray, sigma: float) -> np.ndarray:
    """Thin curves redrawn as binary strokes about 4·sigma wide (sigma 0: unchanged)."""
    if sigma <= 0:
        return curves
    blurred = cv2.GaussianBlur(curves, (0, 0), sigma)
    return np.where(blurred > 4, 255, 0).astype(np.uint8)


def fake_scribble(
    edges: np.ndarray, threshold: float = 127, nms_sigma: float = 3.0, stroke_sigma: float = 3.0
) -> np.ndarray:
    """Fake scribble of one uint8 (H, W) HED map: uint8 (H, W) of 0 and 255."""
    return strokes(thin(ridge_nms(edges, threshold, nms_sigma)), stroke_sigma)
