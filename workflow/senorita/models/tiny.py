"""Tiny randomly initialised models of every family the registry loads, saved in each family's own
format, so the production loading and inference code runs on CPU with no network (the embedded
default and the tests point the registry here). Their outputs are meaningless; their shapes,
dtypes, file formats and code paths are the real ones.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch

from senorita.atomic import atomic_path

log = logging.getLogger(__name__)

FAMILIES = ("depth", "hed", "captioner", "clip")


def build_depth(out: Path) -> Path:
    """Depth Anything (DPT head on a 4-layer, 16-wide DINOv2), with its image processor."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 16, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
        depth_estimation_type="relative",
    )
    model = DepthAnythingForDepthEstimation(config)
    # The real model's preprocessing (keep aspect, multiples of 14, ImageNet statistics), smaller.
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_hed(out: Path) -> Path:
    """ControlNetHED with 4–8 channels per stage, saved as a state dict like the real one."""
    from senorita.models.hed import DEFAULT_FILENAME, DEPTHS, ControlNetHED

    net = ControlNetHED(widths=(4, 8, 8, 8, 8), depths=DEPTHS)
    with torch.no_grad():
        net.norm.copy_(torch.tensor([123.7, 116.3, 103.5]).view(1, 3, 1, 1))
    path = out / DEFAULT_FILENAME
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(net.state_dict(), tmp)
    return path


def tiny_byte_tokenizer():
    """A byte-level BPE tokenizer with no merges (every byte one token), like OPT's in format."""
    from transformers import GPT2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    specials = ["</s>", "<pad>", "<unk>"]
    vocab = {t: i for i, t in enumerate([*specials, *bytes_to_unicode().values()])}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return GPT2Tokenizer(
            str(Path(tmp) / "vocab.json"),
            str(Path(tmp) / "merges.txt"),
            bos_token="</s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
        )


def build_captioner(out: Path) -> Path:
    """BLIP-2 (1-layer ViT, Q-Former and OPT, 16 wide, 4 query tokens) with its processor."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        OPTConfig,
    )

    tokenizer = tiny_byte_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.image_token = "<image>"
    vocab = len(tokenizer)
    text = OPTConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Blip2Config(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        qformer_config={
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "encoder_hidden_size": 16,
            "vocab_size": vocab,
        },
        text_config=text.to_dict(),
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = Blip2ForConditionalGeneration(config)
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        num_query_tokens=4,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_clip(out: Path) -> Path:
    """CLIP (2-layer, 16-wide text and vision towers), its tokenizer and image processor.

    The tokenizer is CLIP's byte-level BPE with no merges (every byte is a token), built in memory;
    the image processor is CLIP's (short side, centre crop, CLIP's mean and std) at 32 px.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    words = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    # CLIPImageProcessor falls back to its PIL version without torchvision (as here): same steps.
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPModel(config).save_pretrained(out)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out


BUILDERS = {
    "depth": build_depth,
    "hed": build_hed,
    "captioner": build_captioner,
    "clip": build_clip,
}


def build_tiny_models(out: Path, families: tuple[str, ...] = FAMILIES, seed: int = 0) -> dict:
    """Build each family's tiny model in ``out/<family>``; returns the folders."""
    folders = {}
    for family in families:
        torch.manual_seed(seed)
        folder = out / family
        BUILDERS[family](folder)
        folders[family] = folder
        log.info("tiny %s model written to %s", family, folder)
    return folders
