"""A video ControlNet for CogVideoX, as a diffusers model (diffusers has none).

Built from a CogVideoX transformer (``from_transformer``): its patch embedder, time embedding and
first N blocks are copied; a zero-initialised control patch embedder takes the concatenated
control latents (HED, Canny and depth, each encoded by the 3D VAE: 3 × 16 channels) and adds them
to the embedded video tokens; after each block a zero-initialised linear projection makes that
block's residual. The main transformer (``CogVideoXControlTransformer3DModel``) adds residual
k mod N after its block k. Everything new starts at zero, so attaching the ControlNet changes
nothing until it is trained. A learned positional table (5B-I2V) is resampled to the clip's size
as in the transformer (``senorita.experts.transformer.embed_tokens``).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import CogVideoXPatchEmbed, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import nn

from senorita.experts.transformer import embed_tokens

# Config keys shared with CogVideoXTransformer3DModel (copied by from_transformer).
SHARED = (
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "time_embed_dim",
    "text_embed_dim",
    "dropout",
    "attention_bias",
    "sample_width",
    "sample_height",
    "sample_frames",
    "patch_size",
    "temporal_compression_ratio",
    "max_text_seq_length",
    "activation_fn",
    "timestep_activation_fn",
    "norm_elementwise_affine",
    "norm_eps",
    "spatial_interpolation_scale",
    "temporal_interpolation_scale",
    "use_rotary_positional_embeddings",
    "use_learned_positional_embeddings",
    "patch_bias",
)


class CogVideoXControlNetModel(ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        control_channels: int = 48,
        num_layers: int = 6,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        text_embed_dim: int = 4096,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
    ):
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner_dim,
            text_embed_dim=text_embed_dim,
            bias=patch_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_positional_embeddings=not use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
        )
        self.control_embed = nn.Conv2d(
            control_channels, inner_dim, kernel_size=patch_size, stride=patch_size
        )
        self.embedding_dropout = nn.Dropout(dropout)
        self.time_proj = Timesteps(inner_dim, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(inner_dim, time_embed_dim, timestep_activation_fn)
        self.transformer_blocks = nn.ModuleList(
            [
                CogVideoXBlock(
                    dim=inner_dim,
                    num_attention_heads=num_attention_heads,
                    attention_head_dim=attention_head_dim,
                    time_embed_dim=time_embed_dim,
                    dropout=dropout,
                    activation_fn=activation_fn,
                    attention_bias=attention_bias,
                    norm_elementwise_affine=norm_elementwise_affine,
                    norm_eps=norm_eps,
                )
                for _ in range(num_layers)
            ]
        )
        self.projections = nn.ModuleList(
            [nn.Linear(inner_dim, inner_dim) for _ in range(num_layers)]
        )
        self.gradient_checkpointing = False
        self.zero_new_layers()

    def zero_new_layers(self) -> None:
        """Zero the control embedder and the output projections (what makes it a no-op)."""
        for layer in [self.control_embed, *self.projections]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_transformer(
        cls, transformer, num_layers: int = 6, control_channels: int = 48
    ) -> CogVideoXControlNetModel:
        """A ControlNet whose shared parts are copies of ``transformer``'s (first N blocks)."""
        if transformer.config.patch_size_t is not None:
            raise ValueError("CogVideoX 1.5 (patch_size_t) is not supported")
        if num_layers > transformer.config.num_layers:
            raise ValueError(
                f"num_layers {num_layers} > the transformer's {transformer.config.num_layers}"
            )
        config = {k: transformer.config[k] for k in SHARED}
        net = cls(**config, num_layers=num_layers, control_channels=control_channels)
        net.patch_embed.load_state_dict(transformer.patch_embed.state_dict())
        net.time_embedding.load_state_dict(transformer.time_embedding.state_dict())
        for mine, theirs in zip(
            net.transformer_blocks, transformer.transformer_blocks, strict=False
        ):
            mine.load_state_dict(theirs.state_dict())
        return net if net.dtype == transformer.dtype else net.to(dtype=transformer.dtype)

    def forward(
        self,
        hidden_states: torch.Tensor,
        control: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: int | float | torch.LongTensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        conditioning_scale: float = 1.0,
    ) -> list[torch.Tensor]:
        """Residuals, one per block, for the main transformer.

        ``hidden_states`` is the main branch's input (B, F, C, H, W) and ``control`` the control
        latents (B, F, control_channels, H, W).
        """
        batch, frames, _, height, width = control.shape
        emb = self.time_embedding(self.time_proj(timestep).to(dtype=hidden_states.dtype))
        tokens = embed_tokens(self.patch_embed, encoder_hidden_states, hidden_states)
        tokens = self.embedding_dropout(tokens)
        text_len = encoder_hidden_states.shape[1]
        text, video = tokens[:, :text_len], tokens[:, text_len:]
        cond = self.control_embed(control.reshape(-1, control.shape[2], height, width))
        cond = cond.view(batch, frames, *cond.shape[1:]).flatten(3).transpose(2, 3).flatten(1, 2)
        video = video + cond
        residuals = []
        for block, projection in zip(self.transformer_blocks, self.projections, strict=True):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                video, text = self._gradient_checkpointing_func(
                    block, video, text, emb, image_rotary_emb, None
                )
            else:
                video, text = block(
                    hidden_states=video,
                    encoder_hidden_states=text,
                    temb=emb,
                    image_rotary_emb=image_rotary_emb,
                )
            residuals.append(projection(video) * conditioning_scale)
        return residuals
