"""Tiny Tokenizers built in memory, shared by the tiny models."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path


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


def tiny_clip_tokenizer():
    """CLIP's byte-level BPE with no merges (every byte is a token), built in memory."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    words = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab = {w: i for i, w in enumerate(words)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


# A minimal chat template in the shape of the real ones: role tags, image and text parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
