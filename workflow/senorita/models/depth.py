"""Monocular depth with transformers' depth-estimation models (default: Depth Anything V2 Small).

The model predicts relative inverse depth (larger is nearer) per frame. ``DepthEstimator`` returns
it raw, at the frame size; ``normalise_clip`` maps a whole clip to 0..255 with one pair of bounds,
so the video does not flicker the way per-frame normalisation would.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from senorita.models import ModelSpec

log = logging.getLogger(__name__)


class DepthEstimator:
    def __init__(self, model, processor, spec: ModelSpec):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.processor = processor

    @classmethod
    def load(cls, spec: ModelSpec) -> DepthEstimator:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        processor = AutoImageProcessor.from_pretrained(spec.id, **spec.pretrained_kwargs())
        model = AutoModelForDepthEstimation.from_pretrained(
            spec.id, **spec.pretrained_kwargs(dtype=spec.torch_dtype())
        )
        log.info(
            "depth: loaded %s (%s, %s on %s)",
            spec.id,
            type(model).__name__,
            spec.torch_dtype(),
            spec.torch_device(),
        )
        return cls(model, processor, spec)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Relative inverse depth of (T, H, W, 3) uint8 RGB frames: (T, H, W) float32."""
        t, height, width, _ = frames.shape
        out = np.empty((t, height, width), np.float32)
        dtype = next(self.model.parameters()).dtype
        for start in range(0, t, self.spec.batch_size):
            batch = list(frames[start : start + self.spec.batch_size])
            inputs = self.processor(images=batch, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype)
            result = self.model(pixel_values=pixels)
            maps = self.processor.post_process_depth_estimation(
                result, target_sizes=[(height, width)] * len(batch)
            )
            for i, m in enumerate(maps):
                out[start + i] = m["predicted_depth"].float().cpu().numpy()
        return out


def normalise_clip(
    depth: np.ndarray, percentiles: tuple[float, float] = (0.0, 100.0)
) -> tuple[np.ndarray, dict[str, float]]:
    """A clip's depth as uint8 0..255 (near is bright), with one set of bounds for all frames.

    The bounds are the given percentiles of the whole clip (0 and 100: its min and max); values
    outside are clipped. A flat clip (no depth range) maps to 0. Returns the frames and the bounds.
    """
    lo, hi = (float(v) for v in np.percentile(depth, percentiles))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("depth has non-finite values")
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    scaled = np.clip((depth - lo) * scale, 0, 255)
    return np.rint(scaled).astype(np.uint8), {"low": lo, "high": hi}
