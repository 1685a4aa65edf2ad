"""Tiny SAM 2.1's video predictor (the segmenter family)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from senorita.atomic import atomic_path

# SAM 2.1 tiny's config shrunk with hydra overrides (0.9 M parameters, 128 px). Traps: a global
# attention block must not open a stage, and the memory encoder's in_dim and mask_downsampler
# embed_dim default to 256.
_M = "++model."

SAM2_TINY_OVERRIDES = [
    f"{_M}image_size=128",
    f"{_M}num_maskmem=3",
    f"{_M}image_encoder.trunk.embed_dim=16",
    f"{_M}image_encoder.trunk.stages=[1,1,2,1]",
    f"{_M}image_encoder.trunk.global_att_blocks=[3]",
    f"{_M}image_encoder.trunk.window_spec=[4,4,4,4]",
    f"{_M}image_encoder.neck.d_model=32",
    f"{_M}image_encoder.neck.position_encoding.num_pos_feats=32",
    f"{_M}image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    f"{_M}memory_attention.d_model=32",
    f"{_M}memory_attention.num_layers=1",
    f"{_M}memory_attention.layer.d_model=32",
    f"{_M}memory_attention.layer.dim_feedforward=64",
    f"{_M}memory_attention.layer.self_attention.embedding_dim=32",
    f"{_M}memory_attention.layer.self_attention.feat_sizes=[8,8]",
    f"{_M}memory_attention.layer.cross_attention.embedding_dim=32",
    f"{_M}memory_attention.layer.cross_attention.feat_sizes=[8,8]",
    f"{_M}memory_attention.layer.cross_attention.kv_in_dim=32",
    f"{_M}memory_encoder.out_dim=32",
    f"{_M}memory_encoder.in_dim=32",
    f"{_M}memory_encoder.position_encoding.num_pos_feats=32",
    f"{_M}memory_encoder.mask_downsampler.embed_dim=32",
    f"{_M}memory_encoder.fuser.layer.dim=32",
    f"{_M}memory_encoder.fuser.num_layers=1",
]

SAM2_TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def build_segmenter(out: Path) -> Path:
    """SAM 2.1 in its own format: a state dict under "model" plus the config and overrides."""
    from sam2.build_sam import build_sam2_video_predictor

    from senorita.models.segmenter import MANIFEST

    predictor = build_sam2_video_predictor(
        SAM2_TINY_CONFIG, None, device="cpu", hydra_overrides_extra=SAM2_TINY_OVERRIDES
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.pt") as tmp:
        torch.save({"model": predictor.state_dict()}, tmp)
    meta = {"config": SAM2_TINY_CONFIG, "checkpoint": "model.pt", "overrides": SAM2_TINY_OVERRIDES}
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
