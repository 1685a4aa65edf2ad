"""The global stylizer (CogVideoX-5B-I2V plus the video ControlNet): restyles the whole clip.

Frame 0 is stylized first by an image ControlNet pipeline (Stable Diffusion 1.5 with a ControlNet,
loaded by the experts stage) and passed in as ``first_frame``; the video model propagates it.
Main branch: the noisy latents and the first frame's latent (I2V conditioning: frame 0's latent,
zeros for the rest). Control branch: the unmasked HED, Canny and depth latents. Prompt: the clip's
caption plus the style; guidance 4.
"""

from __future__ import annotations

import numpy as np
import torch

from senorita.experts.local_stylizer import LocalStylizerPipeline
from senorita.experts.pipeline import ExpertOutput


class GlobalStylizerPipeline(LocalStylizerPipeline):
    def first_frame_latents(self, first_frame: np.ndarray, shape: tuple) -> torch.Tensor:
        """Frame 0's latent in latent frame 0, zeros after it (CogVideoX I2V's conditioning)."""
        image = self.encode(self.to_tensor(first_frame[None]))  # (1, 1, C, h, w)
        pad = torch.zeros(
            (1, shape[0] - 1, *image.shape[2:]), dtype=image.dtype, device=image.device
        )
        return torch.cat([image, pad], dim=1)

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        frames: np.ndarray,
        first_frame: np.ndarray,
        caption: str,
        style: str,
        hed: np.ndarray,
        canny: np.ndarray,
        depth: np.ndarray,
        prompt: str = "{caption}, in {style} style.",
        negative_prompt: str = "",
        guidance_scale: float = 4.0,
        num_inference_steps: int = 50,
        seed: int = 0,
        conditioning_scale: float = 1.0,
    ) -> ExpertOutput:
        self.check_frames(frames)
        shape = self.latent_shape(frames)
        text = {"caption": caption.rstrip(". "), "style": style}
        latents = self.denoise(
            self.first_frame_latents(first_frame, shape),
            prompt.format(**text),
            negative_prompt.format(**text),
            guidance_scale,
            num_inference_steps,
            self.generator(seed),
            shape,
            control=self.control_latents([hed, canny, depth], None),
            conditioning_scale=conditioning_scale,
        )
        return self.finish(latents, frames, None, paste_back=False)
