"""The remover (CogVideoX-2B inpainting, 48 input channels): erases a masked object.

Conditioning: the video with the masked region blanked, and the mask, both through the VAE.
Classifier-free guidance pushes towards "Remove {obj}" and away from "Generate {obj}" (the
paper's positive and negative prompts), guidance 2. The same pairs reversed are object addition.
"""

from __future__ import annotations

import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput


class RemoverPipeline(CogVideoXExpertPipeline):
    @torch.no_grad()
    def __call__(
        self,
        frames: np.ndarray,
        mask: np.ndarray,
        obj: str,
        prompt: str = "Remove {obj}",
        negative_prompt: str = "Generate {obj}",
        guidance_scale: float = 2.0,
        num_inference_steps: int = 50,
        seed: int = 0,
        paste_back: bool = True,
    ) -> ExpertOutput:
        self.check_frames(frames)
        condition = self.inpainting_condition(frames, mask)
        latents = self.denoise(
            condition,
            prompt.format(obj=obj),
            negative_prompt.format(obj=obj),
            guidance_scale,
            num_inference_steps,
            self.generator(seed),
            self.latent_shape(frames),
        )
        return self.finish(latents, frames, mask, paste_back)
