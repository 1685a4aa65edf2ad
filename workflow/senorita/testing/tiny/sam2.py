"""Tiny SAM 2.1 Hiera-L video predictor (the segmenter family), a twin of
``facebook/sam2.1-hiera-large``: SAM 2.1's own large config (``sam2.1_hiera_l.yaml``, the file the
fixture copies) shrunk with hydra overrides, widths, depths and sizes only. Every flag of the
large config stays (two heads per Hiera block, global attention inside stage 3, seven memory
frames, RoPE memory attention, object pointers, occlusion scores...).

Traps: a global-attention block must not open a stage (ZeroDivisionError); the memory encoder's
``in_dim`` and ``mask_downsampler.embed_dim`` default to 256 in code (absent from the yaml) and
must follow ``d_model``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from senorita.atomic import atomic_path

REPO = "facebook/sam2.1-hiera-large"
SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"  # SAM2's own table maps REPO to this
IMAGE, D, MEM = 128, 32, 32  # the real: 1024 px, d_model 256, memory 64
_M = "++model."

SAM2_TINY_OVERRIDES = [
    f"{_M}image_size={IMAGE}",
    # Hiera: 16 wide (doubling per stage), stages 1/1/2/1, global attention in stage 3 (block 3)
    f"{_M}image_encoder.trunk.embed_dim=16",
    f"{_M}image_encoder.trunk.stages=[1,1,2,1]",
    f"{_M}image_encoder.trunk.global_att_blocks=[3]",
    f"{_M}image_encoder.trunk.window_spec=[4,4,4,4]",
    f"{_M}image_encoder.neck.d_model={D}",
    f"{_M}image_encoder.neck.position_encoding.num_pos_feats={D}",
    f"{_M}image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    f"{_M}memory_attention.d_model={D}",
    f"{_M}memory_attention.num_layers=1",
    f"{_M}memory_attention.layer.d_model={D}",
    f"{_M}memory_attention.layer.dim_feedforward=64",
    f"{_M}memory_attention.layer.self_attention.embedding_dim={D}",
    f"{_M}memory_attention.layer.self_attention.feat_sizes=[{IMAGE // 16},{IMAGE // 16}]",
    f"{_M}memory_attention.layer.cross_attention.embedding_dim={D}",
    f"{_M}memory_attention.layer.cross_attention.feat_sizes=[{IMAGE // 16},{IMAGE // 16}]",
    f"{_M}memory_attention.layer.cross_attention.kv_in_dim={MEM}",
    f"{_M}memory_encoder.out_dim={MEM}",
    f"{_M}memory_encoder.in_dim={D}",
    f"{_M}memory_encoder.position_encoding.num_pos_feats={MEM}",
    f"{_M}memory_encoder.mask_downsampler.embed_dim={D}",
    f"{_M}memory_encoder.fuser.layer.dim={D}",
    f"{_M}memory_encoder.fuser.num_layers=1",
]


def build_segmenter(out: Path) -> Path:
    """SAM 2.1 in its own format: a state dict under "model" plus the config and overrides."""
    from sam2.build_sam import build_sam2_video_predictor

    from senorita.models.segmenter import MANIFEST

    predictor = build_sam2_video_predictor(
        SAM2_CONFIG, None, device="cpu", hydra_overrides_extra=SAM2_TINY_OVERRIDES
    )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.pt") as tmp, tmp.open("wb") as f:  # as hed.py: same bytes
        torch.save({"model": predictor.state_dict()}, f)
    meta = {"config": SAM2_CONFIG, "checkpoint": "model.pt", "overrides": SAM2_TINY_OVERRIDES}
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
