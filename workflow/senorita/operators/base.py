"""The operator interface."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

Params = dict[str, Any]


class Operator(Protocol):
    name: str

    def draw(
        self, rng: np.random.Generator, cfg: dict[str, Any], height: int, width: int
    ) -> Params:
        """Draw this pair's parameters from the task config's ranges."""
        ...

    def __call__(self, frames: np.ndarray, params: Params) -> np.ndarray:
        """Apply the parameters to (T, H, W, 3) uint8 frames."""
        ...


def uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    """A draw from [lo, hi]; equal bounds give that value."""
    lo, hi = bounds
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def randint(rng: np.random.Generator, bounds: list[int]) -> int:
    lo, hi = bounds
    return int(rng.integers(lo, hi + 1))


def even(value: float) -> int:
    """Round to the nearest even integer ≥ 2 (H.264 4:2:0 needs even sizes and offsets)."""
    return max(2, 2 * round(value / 2))
