"""Operators: deterministic video transforms that turn a clip into one side of a pair.

Each operator draws its parameters from a seeded generator and the task's config (``draw``), then
applies them to a clip's frames (``__call__``). Parameters are plain JSON values: they go into the
manifest, and applying the same parameters again gives the same video.

Which task each operator makes is the task registry's ``operator`` field (``senorita.tasks``,
``operator_of(task)``); a new operator is one module here and one registry entry.
"""

from __future__ import annotations

from senorita.operators.base import Operator
from senorita.operators.blur import Blur
from senorita.operators.canny import Canny
from senorita.operators.cut import BorderCut, HoleCut
from senorita.operators.downsize import Downsize
from senorita.operators.grayscale import Grayscale

__all__ = ["Blur", "BorderCut", "Canny", "Downsize", "Grayscale", "HoleCut", "Operator"]
