"""Tiny CogVideoX: twins of ``THUDM/CogVideoX-2b`` and ``THUDM/CogVideoX-5b-I2V`` (T5 encoder and
sentencepiece tokenizer, 3D VAE, scheduler, transformer), the base pipelines and the four experts.

Each component is its real-config fixture (``senorita.testing.real_configs``) with only the size
keys below changed: every flag stays, including the positions (sincos for the 2B; rotary AND a
learned table for the 5B-I2V) with the real ``sample_height/width/frames`` (60 × 90 × 49), the
16 latent channels, the 226 text tokens, the VAE's scaling factor and compression, the
scheduler's prediction type, SNR shift and spacing, and the tokenizer folder's file kinds
(``spiece.model``, no ``tokenizer.json``)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from senorita.testing.real_configs import real_config

COGVIDEOX_2B = "THUDM/CogVideoX-2b"
COGVIDEOX_5B_I2V = "THUDM/CogVideoX-5b-I2V"
T5_XXL_REPOS = (COGVIDEOX_2B, COGVIDEOX_5B_I2V)

# The only keys a twin changes, per component (the tests hold every other key to the fixture).
TRANSFORMER_SIZES = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,  # rotary splits it 1/4 + 3/8 + 3/8: even parts
    "num_layers": 2,
    "text_embed_dim": 32,  # = the T5 twin's d_model
    "time_embed_dim": 8,
}
VAE_SIZES = {"block_out_channels": [8, 8, 8, 8], "layers_per_block": 1, "norm_num_groups": 2}
T5_SIZES = {
    "d_model": 32,
    "d_ff": 48,
    "d_kv": 8,
    "num_heads": 4,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "vocab_size": None,  # the twin tokenizer's size, rounded up to 128 as the real 32128 is
}
# Tokenizer files whose token ids move with the vocabulary size.
TOKENIZER_SIZES = {"added_tokens_decoder"}

# What the twin sentencepiece model is trained on: caption-like text (no download needed).
CORPUS = (
    "A dog runs across a sunny park and catches a red ball.",
    "Remove the car from the street; the buildings stay as they are.",
    "Turn the whole video into a watercolor painting with soft edges.",
    "A woman in a blue coat walks past a bakery window at night.",
    "Replace the cat on the sofa with a small brown rabbit.",
    "Make the sky golden, like the last light of a summer evening.",
    "Two children build a sandcastle while waves roll onto the beach.",
    "Add a hat to the man who is reading a newspaper on the train.",
    "The camera pans over snowy mountains, 4K, cinematic, 24 fps!",
    "Change the style to ukiyo-e; keep the motion and the layout.",
    "0123456789 (quotes) 'single' \"double\" #hash @at %percent & more? yes: no - maybe.",
)


def _sized(config: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    return {**config, **{k: v for k, v in sizes.items() if v is not None}}


def train_spiece(vocab_size: int = 256) -> bytes:
    """A sentencepiece unigram model in T5's layout (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, no
    bos; NFKC normalisation), trained in memory on ``CORPUS`` (deterministic: one thread)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 8),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        normalization_rule_name="nmt_nfkc",
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def write_t5_tokenizer(out: Path, repo: str, subfolder: str = "tokenizer") -> Path:
    """The twin of ``repo``'s T5 tokenizer folder: a trained ``spiece.model`` and the real
    folder's other files (extra ids renumbered after the smaller vocabulary; a ``tokenizer.json``
    only where the real folder has one); the same files, no more. Without a ``tokenizer.json``
    loading it needs sentencepiece and protobuf, as loading the real one does."""
    import sentencepiece as spm

    from senorita.testing.real_configs import real_files

    model = train_spiece()
    pieces = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    config = real_config(repo, f"{subfolder}/tokenizer_config.json")
    extra = config["extra_ids"]
    ids = {f"<extra_id_{i}>": pieces + extra - 1 - i for i in range(extra)}  # T5's order
    decoder = {}
    for key, token in config["added_tokens_decoder"].items():
        decoder[str(ids.get(token["content"], int(key)))] = token
    config["added_tokens_decoder"] = dict(sorted(decoder.items(), key=lambda kv: int(kv[0])))
    wanted = {p.split("/", 1)[1] for p in real_files(repo) if p.startswith(f"{subfolder}/")}
    files = {
        "spiece.model": model,
        "tokenizer_config.json": config,
        "special_tokens_map.json": real_config(repo, f"{subfolder}/special_tokens_map.json"),
        "added_tokens.json": ids,
    }
    files = {name: data for name, data in files.items() if name in wanted}
    if wanted - set(files) - {"tokenizer.json"} or "spiece.model" not in wanted:
        raise RuntimeError(f"{repo}: the real {subfolder} folder holds {sorted(wanted)}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, data in files.items():
        if isinstance(data, bytes):
            (out / name).write_bytes(data)
        else:
            text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
            (out / name).write_text(text + "\n", encoding="utf-8")
    if "tokenizer.json" in wanted:  # the fast tokenizer's own file, converted from spiece.model
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(out).backend_tokenizer.save(str(out / "tokenizer.json"))
    return out


def tiny_t5(repo: str = COGVIDEOX_2B, subfolder: str = "tokenizer", encoder: str = "text_encoder"):
    """``repo``'s T5 tokenizer (loaded from its twin folder, as the pipelines load it) and a
    2-layer, 32-wide twin of its T5-XXL encoder (gated-gelu and every other flag kept)."""
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_t5_tokenizer(Path(tmp) / "tok", repo, subfolder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    config = real_config(repo, f"{encoder}/config.json")
    vocab = -(-len(tokenizer) // 128) * 128
    config = _sized(config, {**T5_SIZES, "vocab_size": vocab})
    for key in ("_name_or_path", "architectures", "torch_dtype", "transformers_version"):
        config.pop(key, None)
    return tokenizer, T5EncoderModel(T5Config(**config))


def tiny_vae(repo: str = COGVIDEOX_2B):
    """``repo``'s 3D VAE (16 latent channels, ×8 space, ×4 time, its scaling factor), with four
    8-channel one-layer blocks."""
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX.from_config(
        _sized(real_config(repo, "vae/config.json"), VAE_SIZES)
    )


def tiny_scheduler(repo: str = COGVIDEOX_2B):
    """``repo``'s scheduler, exactly (a scheduler has no sizes)."""
    import diffusers

    config = real_config(repo, "scheduler/scheduler_config.json")
    return getattr(diffusers, config["_class_name"]).from_config(config)


def twin_transformer(repo: str, cls=None):
    """``repo``'s transformer with 2 blocks of 2 × 16 heads (``cls`` defaults to diffusers'
    CogVideoXTransformer3DModel)."""
    if cls is None:
        from diffusers import CogVideoXTransformer3DModel as cls

    return cls.from_config(_sized(real_config(repo, "transformer/config.json"), TRANSFORMER_SIZES))


def tiny_transformer(in_channels: int, rotary: bool):
    """A small CogVideoX transformer for unit tests of the expert classes (not a checkpoint twin:
    4 latent channels, 16 text tokens, no learned positions; use ``twin_transformer`` for one)."""
    from senorita.experts.transformer import CogVideoXControlTransformer3DModel

    return CogVideoXControlTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=in_channels,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=32,
        num_layers=2,
        sample_width=74,
        sample_height=42,
        sample_frames=33,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=rotary,
    )


def build_cogvideox_base(out: Path, i2v: bool) -> Path:
    """The twin of a base checkpoint as the hub ships it (diffusers' own pipeline classes):
    CogVideoX-2B text-to-video, or CogVideoX-5B-I2V image-to-video. The experts are built from
    these."""
    import diffusers

    repo = COGVIDEOX_5B_I2V if i2v else COGVIDEOX_2B
    index = real_config(repo, "model_index.json")
    tokenizer, text_encoder = tiny_t5(repo)
    getattr(diffusers, index["_class_name"])(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae(repo),
        transformer=twin_transformer(repo),
        scheduler=tiny_scheduler(repo),
    ).save_pretrained(out)
    write_t5_tokenizer(out / "tokenizer", repo)  # save_pretrained writes tokenizer.json instead
    return out


def build_expert(out: Path, name: str) -> Path:
    """One expert pipeline, made the way training makes it (``senorita.training.build``) from
    the base twin: CogVideoX-2B for the remover, local stylizer and super-resolver,
    CogVideoX-5B-I2V for the inpainter and global stylizer; the transformer widened to 3 × 16
    latent channels for inpainting and 2 × 16 for the super-resolver, and a one-block
    ControlNet copied from it for the stylizers."""
    from senorita.training.build import build_expert as build_from_base

    i2v = name in ("global_stylizer", "inpainter")
    with tempfile.TemporaryDirectory() as tmp:
        base = build_cogvideox_base(Path(tmp) / "base", i2v=i2v)
        pipe = build_from_base(
            name, {"init": str(base), "revision": "main", "controlnet_layers": 1}
        )
        # Loading recorded the temporary base folder as each model's origin; the base's twin
        # name instead, so a rebuild writes the same configs.
        for component in pipe.components.values():
            if hasattr(component, "register_to_config"):
                component.register_to_config(
                    _name_or_path="cogvideox_5b_i2v" if i2v else "cogvideox_2b"
                )
        pipe.save_pretrained(out)
        write_t5_tokenizer(out / "tokenizer", COGVIDEOX_5B_I2V if i2v else COGVIDEOX_2B)
    return out
