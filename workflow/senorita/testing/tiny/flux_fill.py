"""Tiny FLUX.1-Fill (the frame_filler family): a twin of ``black-forest-labs/FLUX.1-Fill-dev``.

Every component is its real-config fixture with only sizes shrunk: the transformer keeps its 384
input channels (packed latents, masked-image latents and the 8 × 8 mask) and 64 outputs, the
guidance embedding and rotary axes in the real proportions; the VAE keeps 16 latent channels, four
levels (×8), its scaling and shift; the scheduler is the real one; the T5 tokenizer folder ships
``spiece.model`` and ``tokenizer.json`` as the real ``tokenizer_2`` does."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import real_config
from senorita.testing.tiny._tokenizers import tiny_clip_tokenizer
from senorita.testing.tiny.clip import tiny_clip_text_encoder
from senorita.testing.tiny.cogvideox import tiny_t5, write_t5_tokenizer

REPO = "black-forest-labs/FLUX.1-Fill-dev"
TRANSFORMER_SIZES = {
    "num_layers": 1,
    "num_single_layers": 1,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "axes_dims_rope": [4, 6, 6],  # sums to the head dim, as 16 + 56 + 56 = 128
    "joint_attention_dim": 32,  # the T5 twin's d_model
    "pooled_projection_dim": None,  # the CLIP twin's hidden size
}
VAE_SIZES = {"block_out_channels": [8, 8, 8, 8], "layers_per_block": 1, "norm_num_groups": 2}


def build_frame_filler(out: Path) -> Path:
    """FLUX.1-Fill's twin: one double and one single 2 × 16 block, a four-level 8-wide VAE,
    CLIP and T5 twins."""
    import diffusers

    index = real_config(REPO, "model_index.json")
    tokenizer = tiny_clip_tokenizer()
    text_encoder = tiny_clip_text_encoder(tokenizer)
    tokenizer_2, text_encoder_2 = tiny_t5(REPO, "tokenizer_2", "text_encoder_2")
    sizes = {**TRANSFORMER_SIZES, "pooled_projection_dim": text_encoder.config.hidden_size}
    transformer = diffusers.FluxTransformer2DModel.from_config(
        {**real_config(REPO, "transformer/config.json"), **sizes}
    )
    vae = diffusers.AutoencoderKL.from_config({**real_config(REPO, "vae/config.json"), **VAE_SIZES})
    scheduler_config = real_config(REPO, "scheduler/scheduler_config.json")
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    getattr(diffusers, index["_class_name"])(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    ).save_pretrained(out)
    write_t5_tokenizer(out / "tokenizer_2", REPO, "tokenizer_2")
    return out
