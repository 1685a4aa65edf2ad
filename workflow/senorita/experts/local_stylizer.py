"""The local stylizer (CogVideoX-2B inpainting plus the video ControlNet): restyles a masked
object, e.g. "It's a golden dog.", guidance 6. The prompt's ``{article}`` is "a" or "an" for
the attribute ("It's an orange car."), as the training prompts and the paper have one.

Main branch: the masked video and the mask (as the remover). Control branch: the HED, Canny and
depth maps masked to the object, each through the VAE, concatenated on channels.
"""

from __future__ import annotations

import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput
from senorita.instructions import indefinite_article


def stylizer_prompt(template: str, attribute: str, obj: str) -> str:
    """``template`` filled: ``{article}`` ("a" or "an" for what follows it), ``{attribute}``
    and ``{obj}``."""
    article = indefinite_article(f"{attribute} {obj}")
    return template.format(article=article, attribute=attribute, obj=obj)


class LocalStylizerPipeline(CogVideoXExpertPipeline):
    def control_latents(self, maps: list[np.ndarray], mask: np.ndarray | None) -> torch.Tensor:
        """Control maps (each (T, H, W, 3) uint8), zero outside ``mask`` when given, as latents."""
        if mask is not None:
            maps = [np.where(mask[..., None], m, np.uint8(0)) for m in maps]
        return torch.cat([self.encode(self.to_tensor(m)) for m in maps], dim=2)

    @torch.no_grad()
    def __call__(
        self,
        frames: np.ndarray,
        mask: np.ndarray,
        obj: str,
        attribute: str,
        hed: np.ndarray,
        canny: np.ndarray,
        depth: np.ndarray,
        prompt: str = "It's {article} {attribute} {obj}.",
        negative_prompt: str = "",
        guidance_scale: float = 6.0,
        num_inference_steps: int = 50,
        seed: int = 0,
        paste_back: bool = True,
        conditioning_scale: float = 1.0,
    ) -> ExpertOutput:
        self.check_frames(frames)
        condition = self.inpainting_condition(frames, mask)
        latents = self.denoise(
            condition,
            stylizer_prompt(prompt, attribute, obj),
            stylizer_prompt(negative_prompt, attribute, obj),
            guidance_scale,
            num_inference_steps,
            self.generator(seed),
            self.latent_shape(frames),
            control=self.control_latents([hed, canny, depth], mask),
            conditioning_scale=conditioning_scale,
        )
        return self.finish(latents, frames, mask, paste_back)
