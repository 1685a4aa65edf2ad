"""Tiny Stable Diffusion 1.5 with a ControlNet (the frame_stylizer family): twins of
``stable-diffusion-v1-5/stable-diffusion-v1-5`` and ``lllyasviel/control_v11p_sd15_softedge``,
saved as one StableDiffusionControlNetPipeline folder.

Each component is its real-config fixture with only sizes shrunk: the four UNet/ControlNet levels
and their block types, 4 latent channels, the VAE's four levels (×8), the conditioning embedding's
four stages (an RGB control image at pixel size), and the real PNDM scheduler."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import real_config
from senorita.testing.tiny._tokenizers import tiny_clip_tokenizer
from senorita.testing.tiny.clip import tiny_clip_text_encoder

REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CONTROLNET = "lllyasviel/control_v11p_sd15_softedge"
UNET_SIZES = {
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "attention_head_dim": 2,  # SD 1.x's name for the number of heads
    "cross_attention_dim": None,  # the CLIP twin's hidden size
}
CONTROLNET_SIZES = {**UNET_SIZES, "conditioning_embedding_out_channels": [4, 4, 8, 8]}
VAE_SIZES = {"block_out_channels": [8, 8, 8, 8], "layers_per_block": 1, "norm_num_groups": 4}


def build_frame_stylizer(out: Path) -> Path:
    """SD 1.5's and the soft-edge ControlNet's twins (four levels 8/8/16/16, one layer each)."""
    import diffusers

    tokenizer = tiny_clip_tokenizer()
    text_encoder = tiny_clip_text_encoder(tokenizer)
    width = {"cross_attention_dim": text_encoder.config.hidden_size}
    unet = diffusers.UNet2DConditionModel.from_config(
        {**real_config(REPO, "unet/config.json"), **UNET_SIZES, **width}
    )
    controlnet = diffusers.ControlNetModel.from_config(
        {**real_config(CONTROLNET), **CONTROLNET_SIZES, **width}
    )
    vae = diffusers.AutoencoderKL.from_config({**real_config(REPO, "vae/config.json"), **VAE_SIZES})
    scheduler_config = real_config(REPO, "scheduler/scheduler_config.json")
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    diffusers.StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        controlnet=controlnet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(out)
    return out
