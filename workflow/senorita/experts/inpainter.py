"""The inpainter (CogVideoX-5B-I2V inpainting, 48 input channels): propagates an edited frame 0
through the masked region of the clip (object swap: "It's {new obj}.", guidance 6).

Frame 0 is edited first (FLUX-Fill under the dilated mask, run by the experts stage) and passed
in as ``first_frame``; only its pixels inside the mask are taken (outside it, FLUX's output is
its VAE's round trip of the source, not the source). Conditioning: the masked video whose frame
0 is the edited frame with its mask zeroed (so frame 0 guides the rest), and that mask, through
the VAE. Paste-back copies the source outside the mask in every frame, frame 0 included.
"""

from __future__ import annotations

import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput


class InpainterPipeline(CogVideoXExpertPipeline):
    @torch.no_grad()
    def __call__(
        self,
        frames: np.ndarray,
        mask: np.ndarray,
        first_frame: np.ndarray,
        new_obj: str,
        prompt: str = "It's {new_obj}.",
        negative_prompt: str = "",
        guidance_scale: float = 6.0,
        num_inference_steps: int = 50,
        seed: int = 0,
        paste_back: bool = True,
    ) -> ExpertOutput:
        self.check_frames(frames)
        guide = frames.copy()
        guide[0] = np.where(mask[0][..., None], first_frame, frames[0])
        cond_mask = mask.copy()
        cond_mask[0] = False  # frame 0 is given, not generated
        condition = self.inpainting_condition(guide, cond_mask)
        latents = self.denoise(
            condition,
            prompt.format(new_obj=new_obj),
            negative_prompt.format(new_obj=new_obj),
            guidance_scale,
            num_inference_steps,
            self.generator(seed),
            self.latent_shape(frames),
        )
        return self.finish(latents, frames, mask, paste_back)
