"""Tiny randomly initialised models of every family the registry loads, saved in each family's own
format, so the production loading and inference code runs on CPU with no network (the embedded
default and the tests point the registry here). Their outputs are meaningless; their shapes,
dtypes, file formats and code paths are the real ones.

One file per model family; this module is the index (``BUILDERS``) and the entry point
(``build_tiny_models``, run by ``senorita tiny-models``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from senorita.testing.tiny._tokenizers import CHAT_TEMPLATE, tiny_byte_tokenizer
from senorita.testing.tiny.blip2 import build_captioner
from senorita.testing.tiny.clip import build_clip
from senorita.testing.tiny.cogvideox import build_cogvideox_base, build_expert, tiny_transformer
from senorita.testing.tiny.depth import build_depth
from senorita.testing.tiny.flux_fill import build_frame_filler
from senorita.testing.tiny.grounding_dino import build_detector
from senorita.testing.tiny.hed import build_hed
from senorita.testing.tiny.llm import build_llm
from senorita.testing.tiny.qwen2_5_vl import build_qwen2_5_vl
from senorita.testing.tiny.sam2 import build_segmenter
from senorita.testing.tiny.sd15_controlnet import build_frame_stylizer
from senorita.testing.tiny.vlm import build_vlm

__all__ = [
    "ALL",
    "BASES",
    "BUILDERS",
    "CHAT_TEMPLATE",
    "EXPERTS",
    "FAMILIES",
    "FRAME_EDITORS",
    "build_tiny_models",
    "tiny_byte_tokenizer",
    "tiny_transformer",
]

log = logging.getLogger(__name__)

# The model registry's families (config models.*), which the embedded default points here.
FAMILIES = (
    "depth",
    "hed",
    "captioner",
    "clip",
    "vlm",
    "detector",
    "segmenter",
    "llm",
    "judge",
)
EXPERTS = ("remover", "local_stylizer", "global_stylizer", "inpainter")
FRAME_EDITORS = ("frame_filler", "frame_stylizer")
BASES = ("cogvideox_2b", "cogvideox_5b_i2v")  # what the experts are trained from

BUILDERS = {
    "depth": build_depth,
    "hed": build_hed,
    "captioner": build_captioner,
    "clip": build_clip,
    "vlm": build_vlm,
    "detector": build_detector,
    "segmenter": build_segmenter,
    "llm": build_llm,
    "judge": build_qwen2_5_vl,  # the judge's default, Qwen2.5-VL-7B-Instruct
    **{name: (lambda out, _name=name: build_expert(out, _name)) for name in EXPERTS},
    "super_resolver": lambda out: build_expert(out, "super_resolver"),
    "frame_filler": build_frame_filler,
    "frame_stylizer": build_frame_stylizer,
    "cogvideox_2b": lambda out: build_cogvideox_base(out, i2v=False),
    "cogvideox_5b_i2v": lambda out: build_cogvideox_base(out, i2v=True),
}
ALL = tuple(BUILDERS)


def build_tiny_models(out: Path, families: tuple[str, ...] = ALL, seed: int = 0) -> dict:
    """Build each named tiny model in ``out/<name>``; returns the folders."""
    folders = {}
    for family in families:
        torch.manual_seed(seed)
        folder = out / family
        BUILDERS[family](folder)
        folders[family] = folder
        log.info("tiny %s model written to %s", family, folder)
    return folders
