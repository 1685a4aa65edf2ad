"""The image models that edit frame 0 before a video expert propagates the edit (diffusers
pipelines, loaded with their own ``from_pretrained``):

- ``FrameFiller``: FLUX.1-Fill paints the new object into frame 0 under the dilated mask
  (object swap);
- ``FrameStylizer``: Stable Diffusion 1.5 with a ControlNet restyles frame 0 following one of
  its control maps (global stylization).

Both are called as diffusers' pipelines are (keyword arguments ``image``, ``prompt``,
``generator``, ...), and take and return (H, W, 3) uint8 frames at the clip's size. Seed them
with a CPU generator (``senorita.experts.pipeline.cpu_generator``); none: seed 0.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)


def _dtype(cfg: dict[str, Any]) -> tuple[torch.device, torch.dtype]:
    from senorita.models import resolve_device, resolve_dtype

    device = resolve_device(cfg["device"])
    return device, resolve_dtype(cfg["dtype"], device)


def _revision(ident: str, revision: str | None) -> str | None:
    from pathlib import Path

    return None if Path(ident).expanduser().exists() else revision


def _generator(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator("cpu").manual_seed(0)


class FrameFiller:
    def __init__(self, pipe, cfg: dict[str, Any]):
        self.pipe = pipe
        self.cfg = cfg

    @classmethod
    def load(cls, cfg: dict[str, Any]) -> FrameFiller:
        from diffusers import FluxFillPipeline

        device, dtype = _dtype(cfg)
        pipe = FluxFillPipeline.from_pretrained(
            cfg["id"], revision=_revision(cfg["id"], cfg["revision"]), dtype=dtype
        )
        if cfg.get("cpu_offload") and device.type == "cuda":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        log.info("frame filler: loaded %s (%s on %s)", cfg["id"], dtype, device)
        return cls(pipe, cfg)

    @torch.no_grad()
    def __call__(
        self,
        *,
        image: np.ndarray,
        mask_image: np.ndarray,
        prompt: str,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """``image`` (frame 0) painted under ``mask_image`` (H, W) bool as ``prompt`` says."""
        height, width = image.shape[:2]
        out = self.pipe(
            prompt=prompt,
            image=Image.fromarray(image),
            mask_image=Image.fromarray(mask_image.astype(np.uint8) * 255),
            height=height,
            width=width,
            guidance_scale=self.cfg["guidance"],
            num_inference_steps=self.cfg["steps"],
            max_sequence_length=self.cfg["max_sequence_length"],
            generator=_generator(generator),
        ).images[0]
        return np.asarray(out.convert("RGB").resize((width, height)), dtype=np.uint8)


class FrameStylizer:
    def __init__(self, pipe, cfg: dict[str, Any]):
        self.pipe = pipe
        self.cfg = cfg

    @classmethod
    def load(cls, cfg: dict[str, Any]) -> FrameStylizer:
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

        device, dtype = _dtype(cfg)
        extra = {}
        if cfg.get("controlnet"):  # a base SD 1.5 repo plus a separate ControlNet repo
            extra["controlnet"] = ControlNetModel.from_pretrained(
                cfg["controlnet"], revision=_revision(cfg["controlnet"], "main"), dtype=dtype
            )
        pipe = StableDiffusionControlNetPipeline.from_pretrained(
            cfg["id"],
            revision=_revision(cfg["id"], cfg["revision"]),
            dtype=dtype,
            safety_checker=None,
            requires_safety_checker=False,
            **extra,
        )
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        log.info("frame stylizer: loaded %s (%s on %s)", cfg["id"], dtype, device)
        return cls(pipe, cfg)

    @torch.no_grad()
    def __call__(
        self, *, image: np.ndarray, prompt: str, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """Frame 0 restyled: ``image`` is its control map (H, W, 3) uint8 (as diffusers'
        ControlNet pipelines name it)."""
        height, width = image.shape[:2]
        out = self.pipe(
            prompt=prompt,
            image=Image.fromarray(image),
            height=height,
            width=width,
            guidance_scale=self.cfg["guidance"],
            num_inference_steps=self.cfg["steps"],
            generator=_generator(generator),
        ).images[0]
        return np.asarray(out.convert("RGB").resize((width, height)), dtype=np.uint8)
