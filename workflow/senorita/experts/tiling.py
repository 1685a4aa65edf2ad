"""Overlapping spatial tiles over the latent grid, blended with linear ramps.

A denoising step over a frame larger than the tile size runs the transformer on each tile (all
frames, a window of latent rows and columns) and blends the tiles' predictions into one
prediction of the whole latent, which the scheduler then steps once (MultiDiffusion, Bar-Tal et
al. 2023). Every tile reads the same global latent, drawn once from the seeded generator, so a
seed gives one result and neighbouring tiles agree in their overlap by construction.

Weights: along each axis a window ramps linearly from ~0 to 1 across its overlap with the
previous window and back down across its overlap with the next (flat 1 at the frame's edges);
a tile's weight is the product of its row and column ramps and the blend is normalised by the
weights' sum. Two neighbours' ramps sum to one in their overlap, so where the tiles' predictions
agree the blend is exactly that prediction: no seam.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


def spread(size: int, tile: int, min_overlap: int) -> list[int]:
    """Starts of the fewest windows of ``tile`` covering ``size`` with at least ``min_overlap``
    between neighbours, spread evenly (so the real overlap is as large as their count allows).
    One window (start 0) when the tile covers the whole size."""
    if tile >= size:
        return [0]
    if not 0 <= min_overlap < tile:
        raise ValueError(f"tile overlap {min_overlap} must be in [0, tile {tile})")
    n = math.ceil((size - min_overlap) / (tile - min_overlap))
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def ramps(size: int, starts: list[int], tile: int) -> list[torch.Tensor]:
    """Each window's 1-D weights (length ``min(tile, size)``): a linear ramp over its overlap
    with each neighbour, 1 elsewhere."""
    length = min(tile, size)
    out = []
    for k, start in enumerate(starts):
        w = torch.ones(length, dtype=torch.float32)
        i = torch.arange(length, dtype=torch.float32) + 0.5
        if k > 0 and (o := starts[k - 1] + length - start) > 0:
            w = torch.minimum(w, i / o)
        if k + 1 < len(starts) and (o := start + length - starts[k + 1]) > 0:
            w = torch.minimum(w, (length - i) / o)
        out.append(w)
    return out


@dataclass
class LatentTiles:
    """Windows over a (rows, columns) latent grid and their blend weights."""

    windows: list[tuple[slice, slice]]
    weights: list[torch.Tensor]  # each (rows, columns) of its window
    size: tuple[int, int]  # a window's (rows, columns)

    @classmethod
    def over(cls, grid: tuple[int, int], tile: tuple[int, int], min_overlap: int) -> LatentTiles:
        """Tiles of ``tile`` latent pixels over a ``grid``, overlapping by at least
        ``min_overlap`` latent pixels."""
        axes = []
        for size, t in zip(grid, tile, strict=True):
            starts = spread(size, t, min_overlap)
            axes.append((starts, min(t, size), ramps(size, starts, t)))
        (rows, h, row_w), (cols, w, col_w) = axes
        windows, weights = [], []
        for r, wr in zip(rows, row_w, strict=True):
            for c, wc in zip(cols, col_w, strict=True):
                windows.append((slice(r, r + h), slice(c, c + w)))
                weights.append(wr[:, None] * wc[None, :])
        return cls(windows, weights, (h, w))

    def __len__(self) -> int:
        return len(self.windows)

    def blend(
        self,
        predict: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
        x: torch.Tensor,
        control: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``predict(x_tile, control_tile)`` over every tile of ``x`` (B, T, C, rows, columns),
        blended into one float32 prediction (B, T, C', rows, columns)."""
        out = total = None
        for (rows, cols), weight in zip(self.windows, self.weights, strict=True):
            tile_control = control[..., rows, cols] if control is not None else None
            pred = predict(x[..., rows, cols], tile_control).float()
            weight = weight.to(pred.device)
            if out is None:
                out = torch.zeros((*pred.shape[:3], *x.shape[3:]), device=pred.device)
                total = torch.zeros(x.shape[3:], device=pred.device)
            out[..., rows, cols] += pred * weight
            total[rows, cols] += weight
        return out / total
