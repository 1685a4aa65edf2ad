"""Operators: deterministic video transforms that turn a clip into one side of a pair.

Each operator draws its parameters from a seeded generator and the task's config (``draw``), then
applies them to a clip's frames (``__call__``). Parameters are plain JSON values: they go into the
manifest, and applying the same parameters again gives the same video.
"""

from __future__ import annotations

from senorita.operators.base import Operator
from senorita.operators.blur import Blur
from senorita.operators.canny import Canny
from senorita.operators.cut import BorderCut, HoleCut
from senorita.operators.downsize import Downsize
from senorita.operators.grayscale import Grayscale

# task id -> the operator that makes its source video from the clip (the clip is the target).
OPERATORS: dict[str, Operator] = {
    "deblur": Blur(),
    "upscale": Downsize(),
    "colorization": Grayscale(),
    "canny_to_video": Canny(),
    "outpainting": BorderCut(),
    "inpainting": HoleCut(),
}

__all__ = ["OPERATORS", "Operator"]
