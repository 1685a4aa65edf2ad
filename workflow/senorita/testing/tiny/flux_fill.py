"""Tiny FLUX.1-Fill (the frame_filler family)."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.tiny._tokenizers import tiny_clip_tokenizer
from senorita.testing.tiny.clip import tiny_clip_text_encoder
from senorita.testing.tiny.cogvideox import tiny_t5


def build_frame_filler(out: Path) -> Path:
    """FLUX.1-Fill (one double and one single block, a one-block VAE with 2 latent channels).
    Its transformer takes 8 × latent + 4 × vae_scale² channels and predicts 4 × latent."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )

    tokenizer = tiny_clip_tokenizer()
    tokenizer_2, text_encoder_2 = tiny_t5()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(8,),
        latent_channels=2,
        norm_num_groups=2,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=20,
        out_channels=8,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=16,
        axes_dims_rope=[4, 6, 6],
    )
    FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=tiny_clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    ).save_pretrained(out)
    return out
