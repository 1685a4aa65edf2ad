"""Tiny tokenizers built in memory, twins of the real checkpoints' tokenizers: the same kind
(byte-level BPE, WordPiece), the same special tokens in the same order, the same flags and chat
templates (read from the real-config fixtures); only the vocabulary is cut down to the bytes (and,
for Llama 3, a few merges), so every text still encodes."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

from senorita.testing.real_configs import real_config

OPT_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # OPT's ids 0..3, as in facebook/opt-*
LLAMA3 = "meta-llama/Meta-Llama-3-8B-Instruct"


def _bytes():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def tiny_byte_tokenizer():
    """OPT's tokenizer (BLIP-2's language model): GPT-2 byte-level BPE with OPT's special tokens
    at OPT's ids (``<s> <pad> </s> <unk>``), ``</s>`` as bos, eos and unk, a bos prepended; every
    byte one token (no merges)."""
    from transformers import GPT2Tokenizer

    flags = real_config("Salesforce/blip2-opt-2.7b", "tokenizer_config.json")
    vocab = {t: i for i, t in enumerate([*OPT_SPECIALS, *_bytes()])}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return GPT2Tokenizer(
            str(Path(tmp) / "vocab.json"),
            str(Path(tmp) / "merges.txt"),
            errors=flags["errors"],
            bos_token=flags["bos_token"],
            eos_token=flags["eos_token"],
            unk_token=flags["unk_token"],
            pad_token=flags["pad_token"],
            add_prefix_space=flags["add_prefix_space"],
            add_bos_token=flags["add_bos_token"],
        )


def tiny_clip_tokenizer():
    """CLIP's byte-level BPE with no merges, the vocabulary in CLIP's order: the 256 byte
    characters, the same with ``</w>``, then ``<|startoftext|>`` and ``<|endoftext|>`` last (so
    the end token has the largest id, which CLIP's legacy ``eos_token_id: 2`` pooling relies on)."""
    from transformers import CLIPTokenizer

    flags = real_config("openai/clip-vit-large-patch14", "tokenizer_config.json")
    chars = _bytes()
    words = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    vocab = {w: i for i, w in enumerate(words)}
    return CLIPTokenizer(
        vocab=vocab,
        merges=[],
        errors=flags["errors"],
        unk_token=flags["unk_token"]["content"],
        bos_token=flags["bos_token"]["content"],
        eos_token=flags["eos_token"]["content"],
        pad_token=flags["pad_token"],
        model_max_length=flags["model_max_length"],
    )


def llama3_special_tokens() -> list[str]:
    """Llama 3's 256 special tokens in id order (128000...), from the fixture."""
    decoder = real_config(LLAMA3, "tokenizer_config.json")["added_tokens_decoder"]
    return [decoder[k]["content"] for k in sorted(decoder, key=int)]


def llama3_tokenizer():
    """Llama 3's tokenizer (a ``tokenizer.json`` loaded as PreTrainedTokenizerFast): byte-level
    BPE with Llama 3's split regex, post-processor (bos prepended), decoder, its 256 special
    tokens after the vocabulary, its bos/eos and chat template. The vocabulary is the 256 bytes,
    every lowercase pair and space+letter (a few merges, so BPE merging runs)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    flags = real_config(LLAMA3, "tokenizer.flags.json")
    config = real_config(LLAMA3, "tokenizer_config.json")
    letters = string.ascii_lowercase
    merges = [("Ġ", c) for c in letters] + [(a, b) for a in letters for b in letters]
    regular = [*_bytes(), *(a + b for a, b in merges)]
    specials = llama3_special_tokens()
    model = {
        **flags["model"],
        "vocab": {t: i for i, t in enumerate(regular)},
        "merges": [list(m) for m in merges],
    }
    added = [
        {
            "id": len(regular) + i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, t in enumerate(specials)
    ]
    post = json.loads(json.dumps(flags["post_processor"]))
    for proc in post["processors"]:  # the bos id moves with the vocabulary
        for token in proc.get("special_tokens", {}).values():
            token["ids"] = [len(regular) + specials.index(token["id"])]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": flags["normalizer"],
        "pre_tokenizer": flags["pre_tokenizer"],
        "post_processor": post,
        "decoder": flags["decoder"],
        "model": model,
    }
    backend = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=config["bos_token"],
        eos_token=config["eos_token"],
        clean_up_tokenization_spaces=config["clean_up_tokenization_spaces"],
        model_input_names=config["model_input_names"],
        model_max_length=config["model_max_length"],
        chat_template=config["chat_template"],
    )


# A minimal chat template in the shape of the real ones: role tags, image and text parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
