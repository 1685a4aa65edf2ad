"""An expert pipeline to train, made the way the paper makes it: from a base CogVideoX checkpoint
(CogVideoX-2B for the remover, local stylizer and super-resolver, CogVideoX-5B-I2V for the
inpainter and global stylizer), its transformer widened to 3 × latent channels for inpainting
and 2 × for the super-resolver (noisy and low-resolution latents; new channels zero) and a
ControlNet copied from its first blocks for the stylizers (new layers zero). An ``init`` that is
already this expert's pipeline is loaded as it is (to continue training).

Weights are held in the dtypes ``weight_dtypes`` picks: the frozen T5 encoder and VAE in the
mixed-precision dtype, the transformer and ControlNet in fp32 (the optimizer's master weights).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

INPAINTING = ("remover", "local_stylizer", "inpainter")
CONTROLLED = ("local_stylizer", "global_stylizer")
# The transformer's input, in latent widths: x_t, then each expert's conditioning latents.
INPUT_LATENTS = {**dict.fromkeys(INPAINTING, 3), "super_resolver": 2}


def weight_dtypes(precision: str) -> dict[str, torch.dtype]:
    """Each component's weight dtype for a run at ``precision`` (accelerate's mixed_precision,
    resolved: "no", "fp16" or "bf16").

    The T5 encoder and the VAE are frozen and only make the inputs, outside autocast: they are
    held in the mixed-precision dtype (T5-XXL alone is 19 GB per GPU in fp32, 9.5 GB in bf16).
    The transformer and the ControlNet keep fp32 weights: what trains needs fp32 master weights
    (AdamW's state follows them), and a frozen one runs inside autocast beside fp32 activations
    (its positional embeddings, a ControlNet's residuals), which a bf16 LayerNorm weight refuses
    on the CPU; autocast computes them in low precision all the same.
    """
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return {"text_encoder": low, "vae": low, "default": torch.float32}


def _dtype(dtype, part: str):
    return dtype.get(part, dtype.get("default")) if isinstance(dtype, dict) else dtype


def build_expert(name: str, cfg: dict[str, Any], dtype=None):
    """The expert pipeline named by ``cfg`` (``init``, ``revision``, ``controlnet_layers``), in
    ``dtype``: one dtype, or one per component (``weight_dtypes``)."""
    import diffusers
    from transformers import AutoTokenizer, T5EncoderModel

    from senorita.experts import (
        PIPELINES,
        CogVideoXControlNetModel,
        CogVideoXControlTransformer3DModel,
        widen_input,
    )

    ident = cfg["init"]
    revision = None if Path(ident).expanduser().exists() else cfg["revision"]
    index = diffusers.DiffusionPipeline.load_config(ident, revision=revision)
    cls = PIPELINES[name]
    if index.get("_class_name") == cls.__name__:
        log.info("continuing from the %s checkpoint %s", name, ident)
        return cls.from_pretrained(ident, revision=revision, dtype=dtype)
    sub = {"revision": revision}
    scheduler_cls = getattr(diffusers, index["scheduler"][1])
    transformer = CogVideoXControlTransformer3DModel.from_pretrained(
        ident, subfolder="transformer", dtype=_dtype(dtype, "transformer"), **sub
    )
    vae = diffusers.AutoencoderKLCogVideoX.from_pretrained(
        ident, subfolder="vae", dtype=_dtype(dtype, "vae"), **sub
    )
    latent = vae.config.latent_channels
    if name in INPUT_LATENTS:
        transformer = widen_input(transformer, INPUT_LATENTS[name] * latent)
    controlnet = None
    if name in CONTROLLED:
        controlnet = CogVideoXControlNetModel.from_transformer(
            transformer, num_layers=cfg["controlnet_layers"], control_channels=3 * latent
        )
    log.info("built the %s from the base checkpoint %s", name, ident)
    return cls(
        tokenizer=AutoTokenizer.from_pretrained(ident, subfolder="tokenizer", **sub),
        text_encoder=T5EncoderModel.from_pretrained(
            ident, subfolder="text_encoder", dtype=_dtype(dtype, "text_encoder"), **sub
        ),
        vae=vae,
        transformer=transformer,
        scheduler=scheduler_cls.from_pretrained(ident, subfolder="scheduler", **sub),
        controlnet=controlnet,
    )


def trainable_parameters(pipe, name: str, parts: list[str]) -> list:
    """Freeze what the recipe freezes and return what trains.

    Transformer: everything but the norms and feed-forward layers of blocks after the first.
    ControlNet: its first block, its patch and control embedders, every block's attention, and
    its output projections.
    """
    for module in (pipe.text_encoder, pipe.vae, pipe.transformer, pipe.controlnet):
        if module is not None:
            module.requires_grad_(False)
    params = []
    if "transformer" in parts:
        for key, p in pipe.transformer.named_parameters():
            frozen = key.startswith(("norm_final", "norm_out")) or (
                key.startswith("transformer_blocks.")
                and not key.startswith("transformer_blocks.0.")
                and any(f".{part}." in key for part in ("norm1", "norm2", "ff"))
            )
            if not frozen:
                p.requires_grad_(True)
                params.append(p)
    if "controlnet" in parts:
        if pipe.controlnet is None:
            raise ValueError(f"the {name} has no ControlNet to train")
        for key, p in pipe.controlnet.named_parameters():
            if (
                key.startswith(
                    ("transformer_blocks.0.", "patch_embed.", "control_embed.", "projections.")
                )
                or ".attn1." in key
            ):
                p.requires_grad_(True)
                params.append(p)
    if not params:
        raise ValueError(f"training the {name}: nothing to train (parts {parts})")
    return params
