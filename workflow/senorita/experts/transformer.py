"""The CogVideoX transformer the experts denoise with, and its inpainting variant.

``CogVideoXControlTransformer3DModel`` is diffusers' ``CogVideoXTransformer3DModel`` (same
config, same weights, loads any CogVideoX 1.0 checkpoint) whose forward also takes the
residuals of a video ControlNet (``senorita.experts.controlnet``): main block k adds the
residual of control block k mod N. Without residuals it computes exactly what the base does.

``widen_input`` makes the inpainting transformers (48 input channels: noisy video, masked video
and mask latents) from a base checkpoint: the patch embedder's first channels keep the base
weights, the new ones start at zero, so the widened model equals the base until it is trained.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers finds how to load a pipeline component from its module (model_index.json records
# "senorita.experts.transformer"): by looking up the base classes there, so ModelMixin must be
# a name in this module.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401


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

        hidden_states = self.patch_embed(encoder_hidden_states, hidden_states)
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
