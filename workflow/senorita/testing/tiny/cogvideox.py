"""Tiny CogVideoX: T5 encoder and tokenizer, 3D VAE, scheduler, transformers, the four experts
and the base pipelines."""

from __future__ import annotations

from pathlib import Path


def tiny_t5():
    """A 2-layer, 32-wide T5 encoder and a character-level T5 tokenizer built in memory."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁", *(chr(c) for c in range(32, 127))]
    tokenizer = T5Tokenizer(vocab=[(p, 0.0) for p in pieces], extra_ids=0)
    config = T5Config(
        vocab_size=len(pieces), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4
    )
    return tokenizer, T5EncoderModel(config)


def tiny_vae():
    """CogVideoX's 3D VAE with four 8-channel blocks and 4 latent channels (×8 space, ×4 time)."""
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )


def tiny_scheduler():
    """CogVideoX-2B's scheduler settings (v-prediction, zero terminal SNR, trailing steps)."""
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    )


def tiny_transformer(in_channels: int, rotary: bool):
    """A 2-block CogVideoX transformer; ``rotary`` as the 5B models (2B uses sincos positions)."""
    from senorita.experts.transformer import CogVideoXControlTransformer3DModel

    return CogVideoXControlTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,  # rotary embeddings split it in 1/4 + 3/8 + 3/8: even parts
        in_channels=in_channels,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=32,
        num_layers=2,
        sample_width=74,
        sample_height=42,
        sample_frames=33,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=rotary,
    )


def build_expert(out: Path, name: str) -> Path:
    """One expert pipeline, made the way the real ones are: a base transformer (2B-like with
    sincos positions, or 5B-I2V-like with rotary ones), widened to 3 × latent channels for the
    inpainting experts, and a ControlNet copied from its first block for the stylizers."""
    from senorita.experts import PIPELINES, CogVideoXControlNetModel, widen_input

    latent = 4
    i2v = name in ("global_stylizer", "inpainter")
    base = tiny_transformer(2 * latent if i2v else latent, rotary=i2v)
    transformer = base if name == "global_stylizer" else widen_input(base, 3 * latent)
    controlnet = None
    if name in ("local_stylizer", "global_stylizer"):
        controlnet = CogVideoXControlNetModel.from_transformer(
            transformer, num_layers=1, control_channels=3 * latent
        )
    tokenizer, text_encoder = tiny_t5()
    pipe = PIPELINES[name](
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae(),
        transformer=transformer,
        scheduler=tiny_scheduler(),
        controlnet=controlnet,
    )
    pipe.save_pretrained(out)
    return out


def build_cogvideox_base(out: Path, i2v: bool) -> Path:
    """A base CogVideoX pipeline as the hub ships one (diffusers' own classes): the 2B-like
    text-to-video (sincos positions, latent-channel input) or the 5B-I2V-like image-to-video
    (rotary positions, video and image latents in). Training builds the experts from these."""
    from diffusers import (
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    latent = 4
    template = tiny_transformer(2 * latent if i2v else latent, rotary=i2v)
    transformer = CogVideoXTransformer3DModel.from_config(template.config)
    transformer.load_state_dict(template.state_dict())
    tokenizer, text_encoder = tiny_t5()
    cls = CogVideoXImageToVideoPipeline if i2v else CogVideoXPipeline
    cls(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae(),
        transformer=transformer,
        scheduler=tiny_scheduler(),
    ).save_pretrained(out)
    return out
