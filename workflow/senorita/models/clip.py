"""CLIP image and text embeddings for the filters (default: ``openai/clip-vit-large-patch14``).

Embeddings are the projected features, L2-normalised, as float32 NumPy arrays, so a dot product is
the cosine similarity the peers' thresholds are stated in (raw cosine, not CLIPScore's 2.5×).
Images go through the checkpoint's own processor (resize the short side, centre crop, CLIP's mean
and std). Without torchvision transformers uses its PIL image processor, which does the same.
Texts are truncated to the model's 77-token context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from senorita.models import ModelSpec

log = logging.getLogger(__name__)


class ClipEmbedder:
    def __init__(self, model, processor, spec: ModelSpec):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.dtype = next(self.model.parameters()).dtype
        self.max_tokens = int(model.config.text_config.max_position_embeddings)

    @classmethod
    def load(cls, spec: ModelSpec) -> ClipEmbedder:
        from transformers import CLIPModel, CLIPProcessor

        processor = CLIPProcessor.from_pretrained(spec.id, **spec.pretrained_kwargs())
        model = CLIPModel.from_pretrained(
            spec.id, **spec.pretrained_kwargs(dtype=spec.torch_dtype())
        )
        log.info("clip: loaded %s (%s on %s)", spec.id, spec.torch_dtype(), spec.torch_device())
        return cls(model, processor, spec)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """The processor's pixel values of (N, H, W, 3) uint8 RGB images, on the CPU.

        Separate from the model call so scoring can run it in its decoding threads: on a GPU it,
        not the model, is the slow part (ViT-L/14 in float16 embeds about 2,000 images a second
        on an H100; one CPU thread preprocesses 240 with PIL, 570 with torchvision).
        """
        return self.processor(images=list(frames), return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Normalised embeddings of preprocessed pixel values: (N, D) float32."""
        out = np.empty((len(pixels), self.dim), np.float32)
        for start in range(0, len(pixels), self.spec.batch_size):
            batch = pixels[start : start + self.spec.batch_size].to(self.device, self.dtype)
            features = self.model.get_image_features(pixel_values=batch).pooler_output
            out[start : start + len(batch)] = _normalise(features)
        return out

    def images(self, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Normalised embeddings of (N, H, W, 3) uint8 RGB images: (N, D) float32."""
        return self.embed_pixels(self.preprocess(frames))

    @torch.inference_mode()
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings of texts (truncated to the context length): (N, D) float32."""
        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.spec.batch_size):
            batch = texts[start : start + self.spec.batch_size]
            tokens = self.processor(
                text=batch,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
            )
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            ).pooler_output
            out[start : start + len(batch)] = _normalise(features)
        return out


def _normalise(features: torch.Tensor) -> np.ndarray:
    # In float32: half-precision norms of 768-wide vectors lose digits the thresholds care about.
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)).cpu().numpy()
