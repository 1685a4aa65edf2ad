"""Tiny CLIP ViT-L/14 (the clip family; its text tower also serves FLUX and SD 1.5)."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.tiny._tokenizers import tiny_clip_tokenizer


def tiny_clip_text_encoder(tokenizer):
    """A 1-layer, 16-wide CLIP text tower."""
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = tokenizer.get_vocab()
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    return CLIPTextModel(config)


def build_clip(out: Path) -> Path:
    """CLIP (2-layer, 16-wide text and vision towers), its tokenizer and image processor.

    The tokenizer is CLIP's byte-level BPE with no merges (every byte is a token), built in memory;
    the image processor is CLIP's (short side, centre crop, CLIP's mean and std) at 32 px.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    vocab = tokenizer.get_vocab()
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
