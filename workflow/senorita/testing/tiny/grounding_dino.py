"""Tiny Grounding DINO base (the detector family), a twin of ``IDEA-Research/grounding-dino-base``:
its published config (Swin backbone, BERT text tower, two-stage deformable DETR), image processor
and BERT WordPiece tokenizer kind with the sizes shrunk. Traps: d_model a multiple of 32
(GroupNorm), at least two decoder layers, inputs of at least 128 px."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from senorita.testing.real_configs import folder, real_config

REPO = "IDEA-Research/grounding-dino-base"
SHORT, LONG = 128, 224  # the real resizes to 800 on the short side, at most 1333


def tiny_bert_tokenizer():
    """bert-base-uncased's WordPiece kind, flags and special tokens over a letters vocabulary."""
    from transformers import BertTokenizer

    flags = real_config(REPO, "tokenizer_config.json")
    specials = [flags[k] for k in ("pad_token", "unk_token", "cls_token", "sep_token")]
    letters = string.ascii_lowercase
    words = [*specials, flags["mask_token"], ".", *letters, *("##" + c for c in letters)]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        return BertTokenizer(
            str(Path(tmp) / "vocab.txt"),
            do_lower_case=flags["do_lower_case"],
            tokenize_chinese_chars=flags["tokenize_chinese_chars"],
            strip_accents=flags["strip_accents"],
            model_max_length=flags["model_max_length"],
        )


def build_detector(out: Path) -> Path:
    """Grounding DINO: a 1-block-per-stage, 16-wide Swin, a 1-layer BERT, a 32-wide transformer
    with one encoder and two decoder layers and 20 queries, with its processor."""
    from transformers import (
        AutoImageProcessor,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
    )

    tokenizer = tiny_bert_tokenizer()
    config = real_config(REPO)
    config["backbone_config"].update(
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],  # the real: 4, 8, 16, 32 (heads double with the width)
        hidden_size=16 * 8,
        window_size=4,
        image_size=SHORT,
    )
    config["text_config"].update(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    config.update(
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
        max_text_len=32,
    )
    processor = GroundingDinoProcessor(
        image_processor=AutoImageProcessor.from_pretrained(
            folder(REPO), size={"shortest_edge": SHORT, "longest_edge": LONG}
        ),
        tokenizer=tokenizer,
    )
    GroundingDinoForObjectDetection(GroundingDinoConfig.from_dict(config)).save_pretrained(out)
    processor.save_pretrained(out)
    return out
