"""Tiny object-naming VLM (the vlm family): a generic image-text-to-text chat model (LLaVA) whose
parts carry the flags of the registry's default, ``THUDM/cogvlm2-llama3-chat-19B``.

Not a CogVLM2 twin: CogVLM2 is remote code that imports xformers and torchvision (neither runs in
this environment; torchvision breaks transformers' image processors here) and was written for
transformers 4.4x, so the real code cannot run on the CPU test machine. The demo therefore uses
the chat-template interface (the registry's other supported kind). What is kept from CogVLM2:
its language model (Llama 3: the Llama 3 twin's tokenizer, special tokens, SiLU, RMSNorm 1e-5,
8192 positions, rope theta 500000, bos/eos/pad tokens) and its vision tower's flags (GELU,
LayerNorm 1e-6, 14 px patches, 3 channels). CogVLM2's own interface (build_conversation_input_ids,
trust_remote_code) is exercised by tests/remote_code.
"""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import real_config
from senorita.testing.tiny._tokenizers import llama3_tokenizer
from senorita.testing.tiny.llm import REPO as LLAMA3
from senorita.testing.tiny.llm import tiny_llama_config, twin_token_id

REPO = "THUDM/cogvlm2-llama3-chat-19B"
SIZE = 28  # 2 x 2 patches of 14 (the real: 1344 px)
IMAGE_TOKEN = "<image>"
LANGUAGE_KEYS = (  # CogVLM2's top-level keys that describe its Llama 3 language model
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "initializer_range",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "vocab_size",
    "num_hidden_layers",
    "hidden_act",
    "use_cache",
)
VISION_KEYS = {  # CogVLM2 vision_config key -> CLIPVisionConfig key
    "hidden_act": "hidden_act",
    "layer_norm_eps": "layer_norm_eps",
    "patch_size": "patch_size",
    "in_channels": "num_channels",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "image_size": "image_size",
}

# Llama 3's chat format with image parts (as LLaVA-Llama-3 checkpoints write it); the tokenizer's
# post-processor prepends <|begin_of_text|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def tiny_vision_config() -> dict:
    """CogVLM2's vision flags on a CLIP vision tower, 2 layers, 16 wide, 28 px."""
    real = real_config(REPO)["vision_config"]
    vision = {"model_type": "clip_vision_model"}
    vision.update({ours: real[theirs] for theirs, ours in VISION_KEYS.items()})
    vision.update(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=SIZE,
    )
    return vision


def build_vlm(out: Path) -> Path:
    """LLaVA: a 2-layer CLIP vision tower and a 1-layer Llama 3 twin, with a chat processor."""
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    real = real_config(REPO)
    tokenizer = llama3_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    # Llama 3 has no pad token; CogVLM2 pads with id 128002 (batched prompts need one)
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(
        twin_token_id(tokenizer, real["pad_token_id"])
    )
    language = {"model_type": "llama", **{k: real[k] for k in LANGUAGE_KEYS}}
    language["rope_theta"] = real_config(LLAMA3)["rope_theta"]  # CogVLM2's language model
    text = tiny_llama_config(tokenizer, language)
    config = LlavaConfig(
        vision_config=tiny_vision_config(),
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
        ),
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )
    LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out
