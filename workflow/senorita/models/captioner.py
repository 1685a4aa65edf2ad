"""Captions with BLIP-2 (transformers ``Blip2ForConditionalGeneration``), batched over frames.

The loader and the batched generation call; frame sampling and the CLIP 77-token fit are the
captions stage's (``senorita.captions``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from senorita.models import ModelSpec

log = logging.getLogger(__name__)


class Captioner:
    def __init__(self, model, processor, spec: ModelSpec):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.max_new_tokens = int(spec.options.get("max_new_tokens", 30))
        self.min_new_tokens = int(spec.options.get("min_new_tokens", 1))
        self.prompt = spec.options.get("prompt")

    @classmethod
    def load(cls, spec: ModelSpec) -> Captioner:
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        processor = AutoProcessor.from_pretrained(spec.id, **spec.pretrained_kwargs())
        model = Blip2ForConditionalGeneration.from_pretrained(
            spec.id, **spec.pretrained_kwargs(dtype=spec.torch_dtype())
        )
        log.info(
            "captioner: loaded %s (%s on %s)", spec.id, spec.torch_dtype(), spec.torch_device()
        )
        return cls(model, processor, spec)

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> list[str]:
        """One caption per (H, W, 3) uint8 RGB image, greedy decoding."""
        captions: list[str] = []
        dtype = next(self.model.parameters()).dtype
        for start in range(0, len(images), self.spec.batch_size):
            batch = list(images[start : start + self.spec.batch_size])
            kwargs = {"text": [self.prompt] * len(batch)} if self.prompt else {}
            inputs = self.processor(images=batch, return_tensors="pt", **kwargs).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            ids = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                min_new_tokens=self.min_new_tokens,
                do_sample=False,
            )
            texts = self.processor.batch_decode(ids, skip_special_tokens=True)
            captions += [" ".join(t.split()) for t in texts]
        return captions
