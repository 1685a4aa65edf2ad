"""Tiny BLIP-2 OPT-2.7b (the captioner family), a twin of ``Salesforce/blip2-opt-2.7b``: its
published config, image processor, processor config and OPT tokenizer kind with the sizes shrunk
(ViT, Q-Former and OPT widths, depths and heads; 224 px to 28 px; 32 query tokens to 4; the
vocabulary to bytes). The language model still stops at a newline, as the real one's
``eos_token_id`` 50118 ("\\n") makes it."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import folder, real_config
from senorita.testing.tiny._tokenizers import tiny_byte_tokenizer

REPO = "Salesforce/blip2-opt-2.7b"
SIZE = 28  # 2 x 2 patches of 14
QUERY_TOKENS = 4


def build_captioner(out: Path) -> Path:
    """BLIP-2: a 1-layer ViT, 2-layer Q-Former and 1-layer OPT, 16 wide, with its processor."""
    from transformers import (
        AutoImageProcessor,
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
    )

    tokenizer = tiny_byte_tokenizer()
    image_token = real_config(REPO, "special_tokens_map.json")["additional_special_tokens"][0]
    tokenizer.add_special_tokens({"additional_special_tokens": [image_token]})
    tokenizer.image_token = image_token
    config = real_config(REPO)
    config["vision_config"].update(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=SIZE,
        projection_dim=16,
    )
    config["qformer_config"].update(
        hidden_size=16,
        num_hidden_layers=2,  # cross-attention every 2nd layer (cross_attention_frequency)
        num_attention_heads=2,
        intermediate_size=32,
        encoder_hidden_size=16,
        vocab_size=len(tokenizer),
    )
    config["text_config"].update(
        vocab_size=len(tokenizer),
        hidden_size=16,
        ffn_dim=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        max_position_embeddings=64,
        eos_token_id=tokenizer.convert_tokens_to_ids("Ċ"),  # "\n", as the real 50118
    )
    config.update(
        num_query_tokens=QUERY_TOKENS,
        image_text_hidden_size=16,
        image_token_index=tokenizer.convert_tokens_to_ids(image_token),
    )
    model = Blip2ForConditionalGeneration(Blip2Config.from_dict(config))
    processor = Blip2Processor(
        image_processor=AutoImageProcessor.from_pretrained(
            folder(REPO), size={"height": SIZE, "width": SIZE}
        ),
        tokenizer=tokenizer,
        num_query_tokens=QUERY_TOKENS,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
