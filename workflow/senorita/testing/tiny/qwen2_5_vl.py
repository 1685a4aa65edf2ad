"""Tiny Qwen2.5-VL (``Qwen/Qwen2.5-VL-7B-Instruct``): the chat VLM the vlm family names as its
open alternative to CogVLM2, and the judge's default.

Built from the published config with only sizes shrunk (text 32 wide, 2 layers, 2 heads over one
kv head, mrope [2, 3, 3] summing to half the head size as [16, 24, 24] does; vision 2 blocks, 32
wide, full attention in the last as in every eighth of the real). Every flag is kept: patch 14,
spatial merge 2, temporal patch 2, window 112, SiLU, RMSNorm 1e-6, rope theta 1e6, bf16. Its files
are the real repository's kinds: the real ``preprocessor_config.json``, ``chat_template.json`` and
``generation_config.json``, and a byte-level BPE tokenizer (``Qwen2Tokenizer``) whose 22 added
tokens sit in the real order right after its 256 byte tokens, so every token id of the config maps
as ``real - 151643 + 256``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from senorita.testing.real_configs import folder, real_config

REPO = "Qwen/Qwen2.5-VL-7B-Instruct"
FIRST_ADDED = 151643  # the real id of <|endoftext|>, the first added token
# The added tokens in their real order (ids 151643...151664) and whether each is special.
ADDED = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]
TOKEN_ID_KEYS = (
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "vision_token_id",
    "image_token_id",
    "video_token_id",
)
SIZE_KEYS = {
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "max_window_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "depth",
    "num_heads",
    "out_hidden_size",
    "fullatt_block_indexes",
    "mrope_section",
    "layer_types",
}
BYTES = 256  # the twin's base vocabulary: one token per byte


def twin_id(real_id: int | None) -> int | None:
    """The twin's id of a token the real config names by id (all are added tokens)."""
    return None if real_id is None else real_id - FIRST_ADDED + BYTES


def qwen2_tokenizer(chat_template: str):
    """Qwen2's tokenizer over 256 byte tokens, the real added tokens after them."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    added = {
        BYTES + i: AddedToken(
            text, lstrip=False, rstrip=False, single_word=False, normalized=False, special=special
        )
        for i, (text, special) in enumerate(ADDED)
    }
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        add_prefix_space=False,
        added_tokens_decoder=added,
        additional_special_tokens=[t for t, special in ADDED[1:14] if special],
        chat_template=chat_template,
    )


def tiny_config() -> dict:
    """The real config.json with sizes shrunk and token ids moved to the twin's."""
    cfg = json.loads(json.dumps(real_config(REPO)))
    for key in TOKEN_ID_KEYS:
        if key in cfg:
            cfg[key] = twin_id(cfg[key])
    cfg.update(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        max_window_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=BYTES + cfg["vocab_size"] - FIRST_ADDED,  # the real spare rows kept
    )
    cfg["rope_scaling"]["mrope_section"] = [2, 3, 3]
    cfg["vision_config"].update(
        depth=2,
        hidden_size=32,
        intermediate_size=48,
        num_heads=2,
        out_hidden_size=32,
        fullatt_block_indexes=[1],
    )
    return cfg


def build_qwen2_5_vl(out: Path) -> Path:
    """Save the twin (weights, config, generation config, tokenizer, processor files) to ``out``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    real = folder(REPO)
    template = json.loads((real / "chat_template.json").read_text())["chat_template"]
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**tiny_config()))
    generation = real_config(REPO, "generation_config.json")
    for key in ("bos_token_id", "pad_token_id"):
        generation[key] = twin_id(generation[key])
    generation["eos_token_id"] = [twin_id(i) for i in generation["eos_token_id"]]
    model.generation_config = GenerationConfig.from_dict(generation)
    model.to(torch.bfloat16).save_pretrained(out)
    qwen2_tokenizer(template).save_pretrained(out)
    for name in ("preprocessor_config.json", "chat_template.json"):
        shutil.copy(real / name, out / name)
    return out
