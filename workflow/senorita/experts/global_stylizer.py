"""The global stylizer (CogVideoX-5B-I2V plus the video ControlNet): restyles the whole clip.

Frame 0 is stylized first by an image ControlNet pipeline (Stable Diffusion 1.5 with a ControlNet,
loaded by the experts stage) and passed in as ``image``; the video model propagates it. Main
branch: the noisy latents and the first frame's latent (I2V conditioning: frame 0's latent, zeros
for the rest). Control branch: the unmasked HED, Canny and depth latents. Prompt: the clip's
caption plus the style ("{caption}, in {style} style.", filled by the caller); guidance 4.
"""

from __future__ import annotations

from collections.abc import Sequence

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
        *,
        video: np.ndarray,
        image: np.ndarray,
        control_video: Sequence[np.ndarray],
        prompt: str,
        negative_prompt: str = "",
        guidance_scale: float = 4.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        controlnet_conditioning_scale: float = 1.0,
    ) -> ExpertOutput:
        """``control_video``: the HED, Canny and depth maps (CONTROL_KINDS), in that order; the
        whole frame is generated (no mask, no paste-back)."""
        self.check_frames(video)
        shape = self.latent_shape(video)
        latents = self.denoise(
            self.first_frame_latents(image, shape),
            prompt,
            negative_prompt,
            guidance_scale,
            num_inference_steps,
            generator,
            shape,
            control=self.control_latents(control_video, None),
            conditioning_scale=controlnet_conditioning_scale,
        )
        return self.finish(latents, video, None, paste_back=False)
