"""Tiny The Llama-3 instruct language model (the llm family)."""

from __future__ import annotations

from pathlib import Path

from senorita.testing.tiny._tokenizers import CHAT_TEMPLATE, tiny_byte_tokenizer


def build_llm(out: Path) -> Path:
    """A 1-layer, 16-wide Llama with a byte-level tokenizer and a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_byte_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
