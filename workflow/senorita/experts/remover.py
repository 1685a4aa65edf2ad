"""The remover (CogVideoX-2B inpainting, 48 input channels): erases a masked object.

Conditioning: the video with the masked region blanked, and the mask, both through the VAE.
Classifier-free guidance pushes towards the prompt ("Remove {obj}", filled by the caller) and
away from the negative prompt ("Generate {obj}"), the paper's, guidance 2. The same pairs
reversed are object addition.
"""

from __future__ import annotations

import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput


class RemoverPipeline(CogVideoXExpertPipeline):
    @torch.no_grad()
    def __call__(
        self,
        *,
        video: np.ndarray,
        mask_video: np.ndarray,
        prompt: str,
        negative_prompt: str = "",
        guidance_scale: float = 2.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        paste_back: bool = True,
    ) -> ExpertOutput:
        self.check_frames(video)
        condition = self.inpainting_condition(video, mask_video)
        latents = self.denoise(
            condition,
            prompt,
            negative_prompt,
            guidance_scale,
            num_inference_steps,
            generator,
            self.latent_shape(video),
        )
        return self.finish(latents, video, mask_video, paste_back)
