"""Tiny Llama 3 8B Instruct (the llm family), a twin of ``meta-llama/Meta-Llama-3-8B-Instruct``:
its published config (grouped-query attention, rope theta 500000, SiLU, RMSNorm 1e-5, untied
embeddings, bfloat16), generation config (stops at ``<|end_of_text|>`` or ``<|eot_id|>``, samples
at 0.6 / 0.9) and tokenizer (a ``tokenizer.json``: byte-level BPE with Llama 3's split regex, its
256 special tokens and its chat template), with the sizes and the vocabulary shrunk."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.real_configs import real_config
from senorita.testing.tiny._tokenizers import llama3_special_tokens, llama3_tokenizer

REPO = "meta-llama/Meta-Llama-3-8B-Instruct"
REAL_FIRST_SPECIAL = 128000  # the real vocabulary: 128000 byte-level BPE tokens, then specials


def twin_token_id(tokenizer, real_id: int) -> int:
    """The twin's id of the special token the real checkpoint numbers ``real_id``."""
    return tokenizer.convert_tokens_to_ids(llama3_special_tokens()[real_id - REAL_FIRST_SPECIAL])


def tiny_llama_config(tokenizer, real: dict) -> dict:
    """A Llama 3 config (``real``: the published one) 32 wide, 1 layer, 4 query heads sharing 1
    key/value head (the real: 32 sharing 8), its token ids moved to the twin's vocabulary."""
    real = dict(real)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if real.get(key) is not None:
            real[key] = twin_token_id(tokenizer, real[key])
    real.update(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=112,  # 3.5 x the width, as the real 14336 / 4096
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
    )
    return real


def build_llm(out: Path) -> Path:
    """The Llama 3 twin with its tokenizer and generation config."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = llama3_tokenizer()
    config = LlamaConfig.from_dict(tiny_llama_config(tokenizer, real_config(REPO)))
    generation = real_config(REPO, "generation_config.json")
    generation["bos_token_id"] = twin_token_id(tokenizer, generation["bos_token_id"])
    generation["eos_token_id"] = [twin_token_id(tokenizer, i) for i in generation["eos_token_id"]]
    model = LlamaForCausalLM(config).to(getattr(torch, str(config.dtype).removeprefix("torch.")))
    model.generation_config = GenerationConfig.from_dict(generation)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
