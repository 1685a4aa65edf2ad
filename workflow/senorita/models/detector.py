"""Open-vocabulary boxes with Grounding DINO (transformers ``AutoModelForZeroShotObjectDetection``).

Each phrase is asked on its own ("a dog.") so every box belongs to exactly one phrase; the
phrases of one frame run as one batch. For each phrase the best box above the thresholds is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from senorita.models import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Box:
    phrase: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the frame
    score: float


class BoxDetector:
    def __init__(self, model, processor, spec: ModelSpec):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.processor = processor

    @classmethod
    def load(cls, spec: ModelSpec) -> BoxDetector:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        processor = AutoProcessor.from_pretrained(spec.id, **spec.pretrained_kwargs())
        model = AutoModelForZeroShotObjectDetection.from_pretrained(
            spec.id, **spec.pretrained_kwargs(dtype=spec.torch_dtype())
        )
        log.info("detector: loaded %s (%s on %s)", spec.id, spec.torch_dtype(), spec.torch_device())
        return cls(model, processor, spec)

    @torch.inference_mode()
    def __call__(
        self, image: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> list[Box]:
        """The best box of each phrase on one (H, W, 3) uint8 RGB frame; phrases with none drop."""
        height, width = image.shape[:2]
        picture = Image.fromarray(image)
        dtype = next(self.model.parameters()).dtype
        found: list[Box] = []
        for start in range(0, len(phrases), self.spec.batch_size):
            batch = phrases[start : start + self.spec.batch_size]
            # A phrase longer than the model's text positions is cut there, as Grounding DINO's
            # own code does (max_text_len, 256 for the real model): longer input would not run.
            inputs = self.processor(
                images=[picture] * len(batch),
                text=[[p] for p in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.model.config.max_text_len,
            ).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            outputs = self.model(**inputs)
            results = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=box_threshold,
                text_threshold=text_threshold,
                target_sizes=[(height, width)] * len(batch),
            )
            for phrase, result in zip(batch, results, strict=True):
                if len(result["scores"]) == 0:
                    continue
                best = int(torch.argmax(result["scores"]))
                x0, y0, x1, y1 = (float(v) for v in result["boxes"][best].clamp(min=0))
                box = (min(x0, width), min(y0, height), min(x1, width), min(y1, height))
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    continue
                found.append(Box(phrase, box, float(result["scores"][best])))
        return found
