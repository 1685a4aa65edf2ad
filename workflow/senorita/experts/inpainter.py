"""The inpainter (CogVideoX-5B-I2V inpainting, 48 input channels): propagates an edited frame 0
through the masked region of the clip (object swap: "It's {new obj}.", guidance 6).

Frame 0 is edited first (FLUX-Fill under the dilated mask, run by the experts stage) and passed
in as ``image``; only its pixels inside the mask are taken (outside it, FLUX's output is its
VAE's round trip of the source, not the source). Conditioning: the masked video whose frame 0 is
the edited frame with its mask zeroed (so frame 0 guides the rest), and that mask, through the
VAE. Paste-back copies the source outside the mask in every frame, frame 0 included.
"""

from __future__ import annotations

import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput


class InpainterPipeline(CogVideoXExpertPipeline):
    @torch.no_grad()
    def __call__(
        self,
        *,
        video: np.ndarray,
        mask_video: np.ndarray,
        image: np.ndarray,
        prompt: str,
        negative_prompt: str = "",
        guidance_scale: float = 6.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        paste_back: bool = True,
    ) -> ExpertOutput:
        self.check_frames(video)
        guide = video.copy()
        guide[0] = np.where(mask_video[0][..., None], image, video[0])
        cond_mask = mask_video.copy()
        cond_mask[0] = False  # frame 0 is given, not generated
        condition = self.inpainting_condition(guide, cond_mask)
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
