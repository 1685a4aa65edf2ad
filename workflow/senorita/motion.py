"""How much a clip moves: dense optical flow (OpenCV's Farnebäck) between consecutive frames.

A clip whose camera and subjects stand still makes a poor video edit (the expert's result is a
still picture too), so the clips stage records each clip's motion and flags the static ones; the
expert stage can drop them (``experts.drop_static``).
"""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np

# Flow is measured at a quarter of the clip's size: cheap, and steadier against coding noise.
SCALE = 4
# Farnebäck's parameters as OpenCV's sample uses them: pyramid scale 0.5, 3 levels, 15 px window,
# 3 iterations, 5 px neighbourhood with sigma 1.2.
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
# Per frame pair, the magnitude that a tenth of the pixels reach: a subject covering a tenth of
# the frame counts, coding noise on a still does not.
PERCENTILE = 90


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farnebäck's dense flow from grey frame ``a`` to ``b``, (H, W, 2) pixels."""
    return cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK)


def motion(frames: np.ndarray) -> float:
    """The clip's motion: the median over consecutive frame pairs of the 90th percentile of the
    flow magnitude, in pixels per frame at the clip's size. A still clip scores about 0 and a pan
    its speed; a subject moving across more than a tenth of a still frame lifts it well above 0
    (a mean would call a person walking across a still street static)."""
    if len(frames) < 2:
        return 0.0
    height, width = frames.shape[1:3]
    size = (max(width // SCALE, 16), max(height // SCALE, 16))
    small = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
        for f in frames
    ]
    scale = width / size[0]
    magnitudes = [
        float(np.percentile(np.linalg.norm(flow(a, b), axis=-1), PERCENTILE))
        for a, b in pairwise(small)
    ]
    return round(float(np.median(magnitudes)) * scale, 4)
