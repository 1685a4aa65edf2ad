"""The shared machinery of the expert pipelines (diffusers ``DiffusionPipeline`` subclasses).

Each expert is a CogVideoX transformer (``CogVideoXControlTransformer3DModel``) denoising video
latents concatenated on channels with its conditioning latents (masked video, mask, first frame),
optionally steered by a video ControlNet fed control-map latents. What differs per expert is only
which conditioning it assembles and which prompts it uses; the loop, the VAE round trip, the
classifier-free guidance and the paste-back live here.

The experts are called as diffusers' pipelines are, with keyword arguments of the same names:
``video`` (the clip), ``mask_video`` (what to edit), ``image`` (an edited frame 0),
``control_video`` (control maps), ``prompt`` and ``negative_prompt`` (filled in: the pipelines
format no template), ``guidance_scale``, ``num_inference_steps``, ``generator`` (a CPU one,
``cpu_generator(seed)``), ``paste_back`` and ``controlnet_conditioning_scale``; the
super-resolver also takes the output ``height`` and ``width`` and its ``tile`` and
``tile_overlap`` (``denoise`` can predict tile by tile: ``tiling``).

Frames go in and come out as (T, H, W, 3) uint8 arrays; T must be 8k+1 (the VAE compresses time
by 4 and decodes latent frames in pairs after the first) and H, W multiples of 16 (VAE 8 × patch
2). Being ``DiffusionPipeline`` subclasses they ``save_pretrained``/``from_pretrained`` in
diffusers' folder format and offer its memory savers (``enable_model_cpu_offload``,
``vae.enable_tiling``/``enable_slicing``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers import CogVideoXDPMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from senorita.experts.tiling import LatentTiles
from senorita.experts.transformer import rotary_embedding


@dataclass
class ExpertOutput(BaseOutput):
    frames: np.ndarray  # (T, H, W, 3) uint8
    generated: np.ndarray  # the same before paste-back


def cpu_generator(seed: int) -> torch.Generator:
    """The generator a pipeline call is seeded with: noise is drawn on the CPU, so a seed gives
    the same video on any device."""
    return torch.Generator("cpu").manual_seed(int(seed))


def masked_video(frames: np.ndarray, mask: np.ndarray, fill: int = 0) -> np.ndarray:
    """``frames`` with the masked pixels set to ``fill`` (black by default)."""
    return np.where(mask[..., None], np.uint8(fill), frames)


class CogVideoXExpertPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->controlnet->transformer->vae"
    _optional_components: ClassVar[list[str]] = ["controlnet"]

    def __init__(self, tokenizer, text_encoder, vae, transformer, scheduler, controlnet=None):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
            controlnet=controlnet,
        )

    # -- geometry ---------------------------------------------------------------------------------

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def temporal_factor(self) -> int:
        return int(self.vae.config.temporal_compression_ratio)

    def check_frames(self, frames: np.ndarray) -> None:
        t, h, w = frames.shape[:3]
        unit = self.spatial_factor * self.transformer.config.patch_size
        # The VAE decodes the latent frames after the first in pairs: their count must be odd.
        step = 2 * self.temporal_factor
        if (t - 1) % step or h % unit or w % unit:
            raise ValueError(
                f"frames {t}x{h}x{w}: the frame count must be {step}k+1 and "
                f"height and width multiples of {unit}"
            )

    # -- encoders ---------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        length = self.transformer.config.max_text_seq_length
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        ).input_ids
        embeds = self.text_encoder(ids.to(self._execution_device))[0]
        return embeds.to(self.transformer.dtype)

    def to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, C) uint8 -> (1, C, T, H, W) in [-1, 1] on the execution device."""
        # A decoded clip can be a read-only buffer: copy it then (torch wants writable arrays).
        frames = np.require(frames, requirements=["C", "W"])
        video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None]
        return (video.float() / 127.5 - 1).to(self._execution_device, self.vae.dtype)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> scaled latents (B, T', C, h, w); the posterior's mode,
        so conditioning is deterministic."""
        latents = self.vae.encode(video).latent_dist.mode()
        latents = latents * self.vae.config.scaling_factor
        return latents.permute(0, 2, 1, 3, 4).to(self.transformer.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents (1, T', C, h, w) -> (T, H, W, 3) uint8."""
        latents = latents.permute(0, 2, 1, 3, 4) / self.vae.config.scaling_factor
        video = self.vae.decode(latents.to(self.vae.dtype)).sample[0]
        video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return video.permute(1, 2, 3, 0).cpu().numpy()

    def encode_mask(self, mask: np.ndarray) -> torch.Tensor:
        """A (T, H, W) bool mask as latents: white where edited, black elsewhere."""
        video = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)
        return self.encode(self.to_tensor(video))

    def inpainting_condition(self, frames: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """The inpainting experts' conditioning: the masked video's latents and the mask's, on
        channels (what the widened transformer's extra channels read; training uses it too)."""
        masked = self.encode(self.to_tensor(masked_video(frames, mask)))
        return torch.cat([masked, self.encode_mask(mask)], dim=2)

    def finish(
        self, latents: torch.Tensor, source: np.ndarray, mask: np.ndarray | None, paste_back: bool
    ) -> ExpertOutput:
        """Decode, and paste the source back outside ``mask`` when asked."""
        generated = self.decode(latents)
        out = self.paste_back(generated, source, mask) if paste_back else generated
        return ExpertOutput(frames=out, generated=generated)

    # -- the loop ---------------------------------------------------------------------------------

    def _rotary(self, height: int, width: int, frames: int):
        """The rotary embedding for ``frames`` latent frames of ``height`` × ``width`` pixels
        (None for sincos models); the same crop places the learned positions of 5B-I2V."""
        unit = self.spatial_factor * self.transformer.config.patch_size
        return rotary_embedding(
            self.transformer.config, frames, height // unit, width // unit, self._execution_device
        )

    @torch.no_grad()
    def denoise(
        self,
        condition: torch.Tensor | None,
        prompt: str,
        negative_prompt: str,
        guidance_scale: float,
        num_inference_steps: int,
        generator: torch.Generator | None,
        shape: tuple[int, int, int, int],
        control: torch.Tensor | None = None,
        conditioning_scale: float = 1.0,
        tiles: LatentTiles | None = None,
    ) -> torch.Tensor:
        """Latents (1, T', C, h, w) denoised from seeded noise, with classifier-free guidance
        (positive ``prompt`` against ``negative_prompt``) when ``guidance_scale`` > 1.

        ``condition`` (1, T', Cc, h, w) is concatenated to the noisy latents on channels;
        ``control`` (1, T', Ck, h, w) goes through the ControlNet when there is one. No
        ``generator``: seed 0 (``cpu_generator``). ``tiles``: each step's prediction is made
        tile by tile and blended (``tiling.LatentTiles``); the noise and the scheduler's step
        stay global.
        """
        device = self._execution_device
        if generator is None:
            generator = cpu_generator(0)
        cfg = guidance_scale > 1.0
        embeds = self.encode_prompt([negative_prompt, prompt] if cfg else [prompt])
        frames, channels, height, width = shape
        latents = randn_tensor(
            (1, frames, channels, height, width),
            generator=generator,
            device=device,
            dtype=self.transformer.dtype,
        )
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latents = latents * self.scheduler.init_noise_sigma
        if tiles is not None:
            height, width = tiles.size  # the transformer sees one tile at a time
        rotary = self._rotary(height * self.spatial_factor, width * self.spatial_factor, frames)
        accepts = set(inspect.signature(self.scheduler.step).parameters)
        extra = {"generator": generator} if "generator" in accepts else {}
        repeat = 2 if cfg else 1
        if condition is not None:
            condition = condition.repeat(repeat, 1, 1, 1, 1)
        if control is not None:
            control = control.repeat(repeat, 1, 1, 1, 1)
        old_pred = None
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_input = self.scheduler.scale_model_input(torch.cat([latents] * repeat), t)
            if condition is not None:
                model_input = torch.cat([model_input, condition], dim=2)
            timestep = t.expand(model_input.shape[0])

            def predict(x, ctrl, timestep=timestep):
                return self._predict(x, ctrl, embeds, timestep, rotary, conditioning_scale)

            if tiles is None:
                pred = predict(model_input, control).float()
            else:
                pred = tiles.blend(predict, model_input, control)
            if cfg:
                uncond, text = pred.chunk(2)
                pred = uncond + guidance_scale * (text - uncond)
            if isinstance(self.scheduler, CogVideoXDPMScheduler):
                previous = timesteps[i - 1] if i > 0 else None
                latents, old_pred = self.scheduler.step(
                    pred, old_pred, t, previous, latents, **extra, return_dict=False
                )
            else:
                latents = self.scheduler.step(pred, t, latents, **extra, return_dict=False)[0]
            latents = latents.to(self.transformer.dtype)
        return latents

    def _predict(
        self,
        model_input: torch.Tensor,
        control: torch.Tensor | None,
        embeds: torch.Tensor,
        timestep: torch.Tensor,
        rotary,
        conditioning_scale: float,
    ) -> torch.Tensor:
        """The transformer's prediction (with the ControlNet's residuals when there is one)."""
        residuals = None
        if self.controlnet is not None and control is not None:
            residuals = self.controlnet(
                model_input,
                control,
                embeds,
                timestep,
                image_rotary_emb=rotary,
                conditioning_scale=conditioning_scale,
            )
        return self.transformer(
            hidden_states=model_input,
            encoder_hidden_states=embeds,
            timestep=timestep,
            image_rotary_emb=rotary,
            control_residuals=residuals,
            return_dict=False,
        )[0]

    def latent_shape(self, frames: np.ndarray) -> tuple[int, int, int, int]:
        t, h, w = frames.shape[:3]
        return (
            (t - 1) // self.temporal_factor + 1,
            self.vae.config.latent_channels,
            h // self.spatial_factor,
            w // self.spatial_factor,
        )

    @staticmethod
    def paste_back(generated: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The generated pixels inside ``mask`` (T, H, W), the source's everywhere else."""
        return np.where(mask[..., None], generated, source)
