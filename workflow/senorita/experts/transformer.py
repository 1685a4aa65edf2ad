"""The CogVideoX transformer the experts denoise with, and its inpainting variant.

``CogVideoXControlTransformer3DModel`` is diffusers' ``CogVideoXTransformer3DModel`` (same
config, same weights, loads any CogVideoX 1.0 checkpoint) whose forward also takes the
residuals of a video ControlNet (``senorita.experts.controlnet``): main block k adds the
residual of control block k mod N. Without residuals it computes exactly what the base does.

CogVideoX-5B-I2V adds a learned positional table (``use_learned_positional_embeddings``) made for
its 49 × 480 × 720 training clips, which diffusers' ``CogVideoXPatchEmbed`` refuses at any other
height or width. ``embed_tokens`` (used by the transformer and the ControlNet) resamples that
table to the clip's latent grid instead: the first frames of the table (what the original SAT
code does for shorter videos: it slices the table's first rows) and, in space, the positions
the rotary embedding gives the clip (``rotary_embedding``: the clip's grid resized to fit the
config's sample grid and centred), interpolated linearly. At the trained size it is the table.

``widen_input`` makes the inpainting transformers (48 input channels: noisy video, masked video
and mask latents) from a base checkpoint: the patch embedder's first channels keep the base
weights, the new ones start at zero, so the widened model equals the base until it is trained.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import CogVideoXPatchEmbed, get_3d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers finds how to load a pipeline component from its module (model_index.json records
# "senorita.experts.transformer"): by looking up the base classes there, so ModelMixin must be
# a name in this module.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401


def grid_crop(src: tuple[int, int], tgt_width: int, tgt_height: int):
    """diffusers' CogVideoX resize-crop region: ``src`` (height, width) resized to fit inside
    the ``tgt`` grid keeping its aspect ratio, centred; ((top, left), (bottom, right))."""
    h, w = src
    if h / w > tgt_height / tgt_width:
        resize_height, resize_width = tgt_height, round(tgt_height / h * w)
    else:
        resize_width, resize_height = tgt_width, round(tgt_width / w * h)
    top = round((tgt_height - resize_height) / 2.0)
    left = round((tgt_width - resize_width) / 2.0)
    return (top, left), (top + resize_height, left + resize_width)


def _spatial_positions(config, grid_height: int, grid_width: int) -> tuple[torch.Tensor, ...]:
    """Where the rows and columns of a ``grid_height`` × ``grid_width`` token grid sit on the
    config's sample grid: the coordinates ``get_3d_rotary_pos_embed`` uses."""
    p = config.patch_size
    (top, left), (bottom, right) = grid_crop(
        (grid_height, grid_width), config.sample_width // p, config.sample_height // p
    )
    rows = torch.linspace(top, bottom * (grid_height - 1) / grid_height, grid_height)
    cols = torch.linspace(left, right * (grid_width - 1) / grid_width, grid_width)
    return rows, cols


def rotary_embedding(
    config, frames: int, grid_height: int, grid_width: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The rotary (cos, sin) for ``frames`` latent frames of ``grid_height`` × ``grid_width``
    tokens (after patching), as diffusers' CogVideoX pipelines make it; None without rotary."""
    if not config.use_rotary_positional_embeddings:
        return None
    p = config.patch_size
    crops = grid_crop(
        (grid_height, grid_width), config.sample_width // p, config.sample_height // p
    )
    cos, sin = get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=crops,
        grid_size=(grid_height, grid_width),
        temporal_size=frames,
    )
    return cos.to(device), sin.to(device)


def _lerp(x: torch.Tensor, dim: int, pos: torch.Tensor) -> torch.Tensor:
    """``x`` sampled along ``dim`` at fractional indices ``pos`` (linear, clamped to the ends);
    exact at whole indices."""
    size = x.shape[dim]
    pos = pos.clamp(0, size - 1)
    lo = pos.floor().long().clamp(max=size - 1)
    hi = (lo + 1).clamp(max=size - 1)
    shape = [1] * x.ndim
    shape[dim] = -1
    weight = (pos - lo).view(shape).to(x.device, x.dtype)
    a = x.index_select(dim, lo.to(x.device))
    b = x.index_select(dim, hi.to(x.device))
    return a + (b - a) * weight


def learned_positions(
    patch_embed: CogVideoXPatchEmbed, text_length: int, frames: int, height: int, width: int
) -> torch.Tensor:
    """The learned table (1, text + tokens, dim) for ``frames`` latent frames of ``height`` ×
    ``width`` latent pixels: its text rows, then its video rows (laid out frame, row, column)
    sampled at the first ``frames`` frames (frames past the table's end repeat its last) and at
    the rotary embedding's spatial positions."""
    pe = patch_embed
    table = pe.pos_embedding
    if text_length > pe.max_text_seq_length:
        raise ValueError(
            f"{text_length} text tokens: the learned positions cover {pe.max_text_seq_length}"
        )
    p = pe.patch_size
    base = (pe.sample_frames - 1) // pe.temporal_compression_ratio + 1
    base_h, base_w = pe.sample_height // p, pe.sample_width // p
    grid_h, grid_w = height // p, width // p
    dtype = torch.promote_types(table.dtype, torch.float32)  # interpolate in float32 at least
    video = table[0, pe.max_text_seq_length :].reshape(base, base_h, base_w, -1).to(dtype)
    rows, cols = _spatial_positions(pe, grid_h, grid_w)
    video = _lerp(video, 0, torch.arange(frames, dtype=torch.float32))
    video = _lerp(_lerp(video, 1, rows), 2, cols)
    return torch.cat([table[0, :text_length].to(dtype), video.flatten(0, 2)])[None]


def embed_tokens(
    patch_embed: CogVideoXPatchEmbed, text_embeds: torch.Tensor, image_embeds: torch.Tensor
) -> torch.Tensor:
    """``patch_embed(text_embeds, image_embeds)``, except that a learned positional table is
    resampled to the latents' size (``learned_positions``) where diffusers would refuse it (or,
    for another frame count, put sincos positions in its place). (B, text + tokens, dim)."""
    pe = patch_embed
    batch, frames, channels, height, width = image_embeds.shape
    native = (pe.sample_frames - 1) // pe.temporal_compression_ratio + 1
    if not pe.use_learned_positional_embeddings or (frames, height, width) == (
        native,
        pe.sample_height,
        pe.sample_width,
    ):
        return pe(text_embeds, image_embeds)
    if pe.patch_size_t is not None:
        raise ValueError("CogVideoX 1.5 (patch_size_t) is not supported by the experts")
    text = pe.text_proj(text_embeds)
    video = pe.proj(image_embeds.reshape(-1, channels, height, width))
    video = video.view(batch, frames, *video.shape[1:]).flatten(3).transpose(2, 3).flatten(1, 2)
    embeds = torch.cat([text, video], dim=1)
    positions = learned_positions(pe, text.shape[1], frames, height, width)
    return embeds + positions.to(embeds.device, embeds.dtype)


class CogVideoXControlTransformer3DModel(CogVideoXTransformer3DModel):
    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: int | float | torch.LongTensor,
        timestep_cond: torch.Tensor | None = None,
        ofs: int | float | torch.LongTensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
        control_residuals: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor] | Transformer2DModelOutput:
        """diffusers' forward (CogVideoX 1.0 patching) plus ``control_residuals``, one per
        ControlNet block, each (batch, video tokens, inner dim)."""
        if self.config.patch_size_t is not None:
            raise ValueError("CogVideoX 1.5 (patch_size_t) is not supported by the experts")
        batch_size, num_frames, _, height, width = hidden_states.shape

        t_emb = self.time_proj(timestep).to(dtype=hidden_states.dtype)
        emb = self.time_embedding(t_emb, timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=hidden_states.dtype))

        hidden_states = embed_tokens(self.patch_embed, encoder_hidden_states, hidden_states)
        hidden_states = self.embedding_dropout(hidden_states)
        text_seq_length = encoder_hidden_states.shape[1]
        encoder_hidden_states = hidden_states[:, :text_seq_length]
        hidden_states = hidden_states[:, text_seq_length:]

        for i, block in enumerate(self.transformer_blocks):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states, encoder_hidden_states = self._gradient_checkpointing_func(
                    block,
                    hidden_states,
                    encoder_hidden_states,
                    emb,
                    image_rotary_emb,
                    attention_kwargs,
                )
            else:
                hidden_states, encoder_hidden_states = block(
                    hidden_states=hidden_states,
                    encoder_hidden_states=encoder_hidden_states,
                    temb=emb,
                    image_rotary_emb=image_rotary_emb,
                    attention_kwargs=attention_kwargs,
                )
            if control_residuals:
                hidden_states = hidden_states + control_residuals[i % len(control_residuals)]

        hidden_states = self.norm_final(hidden_states)
        hidden_states = self.norm_out(hidden_states, temb=emb)
        hidden_states = self.proj_out(hidden_states)

        p = self.config.patch_size
        output = hidden_states.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
        output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def widen_input(
    transformer: CogVideoXTransformer3DModel, in_channels: int
) -> CogVideoXControlTransformer3DModel:
    """A copy of ``transformer`` taking ``in_channels`` input channels; the extra ones are zero."""
    old = transformer.config.in_channels
    if in_channels < old:
        raise ValueError(f"cannot narrow a transformer from {old} to {in_channels} channels")
    config = dict(transformer.config)
    config["in_channels"] = in_channels
    config["out_channels"] = transformer.config.out_channels or old
    wide = CogVideoXControlTransformer3DModel.from_config(config)
    state = transformer.state_dict()
    weight = state["patch_embed.proj.weight"]
    grown = torch.zeros(
        (weight.shape[0], in_channels, *weight.shape[2:]), dtype=weight.dtype, device=weight.device
    )
    grown[:, :old] = weight
    state["patch_embed.proj.weight"] = grown
    wide.load_state_dict(state, strict=True)
    return wide if wide.dtype == transformer.dtype else wide.to(dtype=transformer.dtype)
