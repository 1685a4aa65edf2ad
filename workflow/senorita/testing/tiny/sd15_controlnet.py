"""Tiny Stable Diffusion 1.5 with a ControlNet (the frame_stylizer family)."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.tiny._tokenizers import tiny_clip_tokenizer
from senorita.testing.tiny.clip import tiny_clip_text_encoder


def build_frame_stylizer(out: Path) -> Path:
    """Stable Diffusion 1.5 with a ControlNet (two-level 8/16-wide UNet and ControlNet)."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )

    blocks = {
        "block_out_channels": (8, 16),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "cross_attention_dim": 16,
        "norm_num_groups": 4,
        "attention_head_dim": 2,
    }
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **blocks,
    )
    controlnet = ControlNetModel(
        in_channels=4, conditioning_embedding_out_channels=(4, 8), **blocks
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
    )
    tokenizer = tiny_clip_tokenizer()
    StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=tiny_clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        controlnet=controlnet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(out)
    return out
