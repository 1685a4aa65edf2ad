"""The experts at full size from a base checkpoint's transformer config, without weights.

``build_on_meta("inpainter")`` makes the inpainter's transformer (CogVideoX-5B-I2V widened to
3 × 16 input channels) on the meta device: every shape, no memory, no download. ``clip_inputs``
makes the tensors the pipelines feed it for a clip (latents, text embeddings, timesteps, rotary
embedding, control latents) and ``forward`` runs the ControlNet then the transformer, as one
denoising step does. Parameter counts, memory plans and FLOP counts (``FlopCounterMode`` on the
meta device) come from these; ``benchmarks/experts_gpu.py`` builds the same on a GPU.

The architecture is what ``senorita.training.build`` makes from a base checkpoint (there with
the base's weights): the inpainting experts widen the input to ``3 × latent`` channels (noisy,
masked video and mask latents) and the stylizers add a ControlNet copying the first
``controlnet_layers`` blocks with ``3 × latent`` control channels (HED, Canny and depth); the
super-resolver widens a 2B base to ``2 × latent`` (noisy and low-resolution video latents; a
5B-I2V base already has them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from senorita.experts.controlnet import SHARED, CogVideoXControlNetModel
from senorita.experts.transformer import CogVideoXControlTransformer3DModel, rotary_embedding


@dataclass(frozen=True)
class ExpertArch:
    base: str  # the hub repository of the base checkpoint (the paper's)
    inpainting: bool  # input widened to 3 × latent channels
    controlnet: bool
    condition_latents: int = 0  # other latent inputs beside the noisy ones (0: the base's)

    @property
    def in_latents(self) -> int | None:
        """Latent inputs the transformer takes (× 16 channels), or None for the base's own."""
        if self.inpainting:
            return 3
        return 1 + self.condition_latents if self.condition_latents else None


EXPERTS = {
    "remover": ExpertArch("THUDM/CogVideoX-2b", inpainting=True, controlnet=False),
    "local_stylizer": ExpertArch("THUDM/CogVideoX-2b", inpainting=True, controlnet=True),
    "inpainter": ExpertArch("THUDM/CogVideoX-5b-I2V", inpainting=True, controlnet=False),
    "global_stylizer": ExpertArch("THUDM/CogVideoX-5b-I2V", inpainting=False, controlnet=True),
    "super_resolver": ExpertArch(
        "THUDM/CogVideoX-2b", inpainting=False, controlnet=False, condition_latents=1
    ),
}

LATENT_CHANNELS = 16  # the CogVideoX VAE's
SPATIAL_FACTOR = 8  # the VAE's downsampling in space


def transformer_config(
    expert: str, config: dict[str, Any] | str | Path | None = None
) -> dict[str, Any]:
    """The base transformer's config: a dict, a ``config.json``, a folder holding one (or a
    pipeline folder with ``transformer/config.json``); by default the real base checkpoint's
    published config (``senorita.testing.real_configs``)."""
    if expert not in EXPERTS:
        raise ValueError(f"unknown expert {expert!r} (known: {', '.join(EXPERTS)})")
    if config is None:
        from senorita.testing.real_configs import real_config

        return real_config(EXPERTS[expert].base, "transformer/config.json")
    if isinstance(config, dict):
        return dict(config)
    path = Path(config)
    for candidate in (path, path / "config.json", path / "transformer" / "config.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"no transformer config.json at {path}")


def build(
    expert: str,
    config: dict[str, Any] | str | Path | None = None,
    controlnet_layers: int = 6,
    device: torch.device | str = "meta",
    dtype: torch.dtype | None = None,
) -> tuple[CogVideoXControlTransformer3DModel, CogVideoXControlNetModel | None]:
    """The expert's transformer and ControlNet (None if it has none) with random weights (no
    memory on ``meta``), built from the base transformer's config."""
    cfg = {k: v for k, v in transformer_config(expert, config).items() if not k.startswith("_")}
    arch = EXPERTS[expert]
    if arch.in_latents and cfg["in_channels"] < arch.in_latents * LATENT_CHANNELS:
        cfg["out_channels"] = cfg.get("out_channels") or cfg["in_channels"]
        cfg["in_channels"] = arch.in_latents * LATENT_CHANNELS
    with torch.device(device):
        transformer = CogVideoXControlTransformer3DModel.from_config(cfg)
        controlnet = None
        if arch.controlnet:
            shared = {k: transformer.config[k] for k in SHARED}
            controlnet = CogVideoXControlNetModel(
                **shared, num_layers=controlnet_layers, control_channels=3 * LATENT_CHANNELS
            )
    if dtype is not None and dtype != transformer.dtype:
        transformer.to(dtype)
        controlnet = controlnet.to(dtype) if controlnet is not None else None
    return transformer.eval(), controlnet.eval() if controlnet is not None else None


def build_on_meta(
    expert: str, config: dict[str, Any] | str | Path | None = None, controlnet_layers: int = 6
) -> tuple[CogVideoXControlTransformer3DModel, CogVideoXControlNetModel | None]:
    """``build`` on the meta device: shapes and parameter counts, no weights, no memory."""
    return build(expert, config, controlnet_layers, device="meta")


def parameters(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def clip_inputs(
    transformer: CogVideoXControlTransformer3DModel,
    controlnet: CogVideoXControlNetModel | None = None,
    frames: int = 33,
    height: int = 336,
    width: int = 592,
    batch: int = 2,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Random inputs of one denoising step for a clip of ``frames`` × ``height`` × ``width``
    pixels, shaped as the pipelines make them (``batch`` 2: classifier-free guidance's two
    prompts; text padded to the config's ``max_text_seq_length``)."""
    cfg = transformer.config
    param = next(transformer.parameters())
    device = param.device if device is None else torch.device(device)
    dtype = param.dtype if dtype is None else dtype
    latent_frames = (frames - 1) // cfg.temporal_compression_ratio + 1
    h, w = height // SPATIAL_FACTOR, width // SPATIAL_FACTOR
    if h % cfg.patch_size or w % cfg.patch_size:
        raise ValueError(f"{height}x{width}: not a multiple of {SPATIAL_FACTOR * cfg.patch_size}")

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(shape, device=device, dtype=dtype)

    rotary = rotary_embedding(cfg, latent_frames, h // cfg.patch_size, w // cfg.patch_size, device)
    inputs = {
        "hidden_states": rand(batch, latent_frames, cfg.in_channels, h, w),
        "encoder_hidden_states": rand(batch, cfg.max_text_seq_length, cfg.text_embed_dim),
        "timestep": torch.full((batch,), 999, device=device, dtype=torch.long),
        "image_rotary_emb": rotary,
        "control": None,
    }
    if controlnet is not None:
        inputs["control"] = rand(batch, latent_frames, controlnet.config.control_channels, h, w)
    return inputs


def forward(
    transformer: CogVideoXControlTransformer3DModel,
    controlnet: CogVideoXControlNetModel | None,
    inputs: dict[str, Any],
) -> torch.Tensor:
    """One denoising step's model call, as ``CogVideoXExpertPipeline.denoise`` makes it."""
    common = {k: inputs[k] for k in ("encoder_hidden_states", "timestep", "image_rotary_emb")}
    residuals = None
    if controlnet is not None:
        residuals = controlnet(inputs["hidden_states"], inputs["control"], **common)
    return transformer(
        hidden_states=inputs["hidden_states"],
        control_residuals=residuals,
        return_dict=False,
        **common,
    )[0]
