"""The local stylizer (CogVideoX-2B inpainting plus the video ControlNet): restyles a masked
object, e.g. "It's a golden dog.", guidance 6 (the prompt filled by the caller).

Main branch: the masked video and the mask (as the remover). Control branch: the HED, Canny and
depth maps masked to the object, each through the VAE, concatenated on channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput

# The control maps the ControlNet reads, in its channel order (``control_video``'s).
CONTROL_KINDS = ("hed", "canny", "depth")


class LocalStylizerPipeline(CogVideoXExpertPipeline):
    def control_latents(self, maps: Sequence[np.ndarray], mask: np.ndarray | None) -> torch.Tensor:
        """Control maps (each (T, H, W, 3) uint8), zero outside ``mask`` when given, as latents."""
        if mask is not None:
            maps = [np.where(mask[..., None], m, np.uint8(0)) for m in maps]
        return torch.cat([self.encode(self.to_tensor(m)) for m in maps], dim=2)

    @torch.no_grad()
    def __call__(
        self,
        *,
        video: np.ndarray,
        mask_video: np.ndarray,
        control_video: Sequence[np.ndarray],
        prompt: str,
        negative_prompt: str = "",
        guidance_scale: float = 6.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        paste_back: bool = True,
        controlnet_conditioning_scale: float = 1.0,
    ) -> ExpertOutput:
        """``control_video``: the HED, Canny and depth maps (CONTROL_KINDS), in that order."""
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
            control=self.control_latents(control_video, mask_video),
            conditioning_scale=controlnet_conditioning_scale,
        )
        return self.finish(latents, video, mask_video, paste_back)
