"""The super-resolver (CogVideoX, 32 input channels): lifts an expert's 336 × 592 video to the
output size (by default 2 ×: 672 × 1184), conditioned on the low-resolution video.

Conditioning: the low-resolution clip resized (bicubic, ``upscale``) to the output size and
encoded by the 3D VAE; its latents are concatenated with the noisy latents on channels. The
transformer is the base's (CogVideoX-2B by default, any CogVideoX checkpoint) with its patch
embedder widened from 16 to 32 latent channels, the new ones zero (``widen_input``; a 5B-I2V
base already takes 32, its image channels read the low-resolution latents). The prompt is the
clip's caption; guidance defaults to 1 (none): the low-resolution video fixes the content, and
guidance would double every step's cost.

Tiling (``tile``, ``tile_overlap``): an output larger than ``tile`` pixels is denoised in
overlapping spatial tiles of ``tile`` (all frames each), blended in latent space at every step
(``tiling.LatentTiles``: linear ramps over the overlaps, one global noise and scheduler step).
Latent space, not pixels after decoding: tiles denoised to the end separately would each
invent their own texture in the overlap, and a pixel blend of two different textures is a
ghosted seam; blended every step, neighbours share one latent and agree. The VAE then encodes
and decodes the whole frame once (``vae.enable_tiling()`` bounds its memory).

Cost, for 33 × 672 × 1184 (a latent grid of 9 × 84 × 148) at the default tile 336 × 592
(42 × 74 latents) and any overlap from 8 to 168 pixels (the default 64): 3 × 3 = 9 tiles, spread
evenly, so their real overlaps are 168 pixels (rows) and 296 (columns); below 8 pixels (no
whole latent) it is 2 × 2 tiles that only touch, and seams show. Each step then runs 9 forwards
of 7,219 tokens (6,993 video + 226 text) instead of one of 28,198: 2.3 × the tokens (2.25 × the
2 × 2 split), but attention's quadratic term is 9 × 7,219² against 28,198², 0.59 ×: for
CogVideoX-2B (30 blocks of width 1,920) 9 × 31.2 against 258 TFLOP per forward, 1.09 × one
full-frame forward (counted with ``FlopCounterMode`` on the meta device, not timed), with about
a quarter of its activation memory, at the token grid the experts run at.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from senorita.experts.pipeline import CogVideoXExpertPipeline, ExpertOutput
from senorita.experts.tiling import LatentTiles

WORKING_SIZE = (336, 592)  # the experts' height × width, the default tile
DEFAULT_OVERLAP = 64  # pixels; the least overlap between neighbouring tiles


def upscale(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, h, w, 3) uint8 frames resized to ``height`` × ``width``: bicubic (area when
    shrinking); the frames themselves at their own size. Training's degraded inputs
    (``senorita.degrade``) are resized the same way."""
    if frames.shape[1:3] == (height, width):
        return frames
    shrink = height < frames.shape[1] or width < frames.shape[2]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


class SuperResolverPipeline(CogVideoXExpertPipeline):
    def tiles(self, height: int, width: int, tile: tuple[int, int], overlap: int) -> LatentTiles:
        """The latent tiles of a ``height`` × ``width`` output for a ``tile`` (pixels) and a
        least ``overlap`` (pixels, rounded down to latent pixels)."""
        unit = self.spatial_factor * self.transformer.config.patch_size
        if tile[0] % unit or tile[1] % unit:
            raise ValueError(f"tile {tile[0]}x{tile[1]}: height and width multiples of {unit}")
        f = self.spatial_factor
        return LatentTiles.over(
            (height // f, width // f), (tile[0] // f, tile[1] // f), overlap // f
        )

    @torch.no_grad()
    def __call__(
        self,
        *,
        video: np.ndarray,
        prompt: str,
        height: int,
        width: int,
        negative_prompt: str = "",
        guidance_scale: float = 1.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        tile: tuple[int, int] | None = None,
        tile_overlap: int = DEFAULT_OVERLAP,
    ) -> ExpertOutput:
        """``video`` (T, h, w, 3) uint8 at ``height`` × ``width``. ``tile`` (height, width in
        pixels, e.g. ``WORKING_SIZE``): denoise in tiles of that size overlapping by at least
        ``tile_overlap`` pixels; None: the whole frame in one forward."""
        lifted = upscale(video, height, width)
        self.check_frames(lifted)
        condition = self.encode(self.to_tensor(lifted))
        tiles = self.tiles(height, width, tuple(tile), tile_overlap) if tile else None
        latents = self.denoise(
            condition,
            prompt,
            negative_prompt,
            guidance_scale,
            num_inference_steps,
            generator,
            self.latent_shape(lifted),
            tiles=tiles,
        )
        frames = self.decode(latents)
        return ExpertOutput(frames=frames, generated=frames)
