"""Tiny CLIP ViT-L/14 (the clip family), a twin of ``openai/clip-vit-large-patch14``: its
published config (quick_gelu, the legacy ``eos_token_id: 2`` pooling, 77 positions), image
processor and tokenizer kind with the sizes shrunk. Its text tower is also the twin of the CLIP
text encoders inside FLUX.1-Fill and Stable Diffusion 1.5, which ship this same text config."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import folder, real_config
from senorita.testing.tiny._tokenizers import tiny_clip_tokenizer

REPO = "openai/clip-vit-large-patch14"
SIZE = 28  # 2 x 2 patches of 14


def tiny_text_config(vocab_size: int, layers: int = 2) -> dict:
    """The real text config, 16 wide, ``layers`` deep, over ``vocab_size`` tokens."""
    text = real_config(REPO)["text_config"]
    text.update(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        projection_dim=16,
    )
    return text


def tiny_clip_text_encoder(tokenizer):
    """A 1-layer, 16-wide CLIP text tower (the real text config shrunk)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig.from_dict(tiny_text_config(len(tokenizer), layers=1))
    return CLIPTextModel(config)


def build_clip(out: Path) -> Path:
    """CLIP (2-layer, 16-wide text and vision towers, 28 px), its tokenizer and image processor
    (the real one's: short side, centre crop, CLIP's mean and std)."""
    from transformers import AutoImageProcessor, CLIPConfig, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    config = real_config(REPO)
    config["text_config"] = tiny_text_config(len(tokenizer))
    config["vision_config"].update(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        projection_dim=16,
    )
    config["projection_dim"] = 16
    # CLIPImageProcessor falls back to its PIL version without torchvision (as here): same steps.
    images = AutoImageProcessor.from_pretrained(
        folder(REPO), size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
    )
    CLIPModel(CLIPConfig.from_dict(config)).save_pretrained(out)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out
