"""Tiny Depth Anything V2 Small (the depth family), a twin of
``depth-anything/Depth-Anything-V2-Small-hf``: its published config and image processor with the
sizes shrunk (DINOv2 width, depth, heads; neck and head widths; the 518 px resize to 56 px)."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import folder, real_config

REPO = "depth-anything/Depth-Anything-V2-Small-hf"
SIZE = 56  # 4 x 4 patches of 14


def build_depth(out: Path) -> Path:
    """DPT head on a 4-layer, 32-wide DINOv2 (the real: 12 layers, 384 wide), 56 px input."""
    from transformers import (
        AutoImageProcessor,
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
    )

    config = real_config(REPO)
    config["backbone_config"].update(
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=4,
        image_size=SIZE,
        # the real taps layers 3, 6, 9, 12 of 12: every third; here every layer of 4
        out_indices=[1, 2, 3, 4],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config.update(
        reassemble_hidden_size=32,
        neck_hidden_sizes=[4, 8, 16, 32],  # the real: width / 8, / 4, / 2, / 1
        fusion_hidden_size=8,
        head_hidden_size=4,
    )
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_dict(config))
    processor = AutoImageProcessor.from_pretrained(
        folder(REPO), size={"height": SIZE, "width": SIZE}
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
