"""The tiny diffusers-side models are twins of the real checkpoints the registry defaults to.

Each twin component's saved config is compared with the published one (the fixtures in
``senorita.testing.real_configs``): only the size keys listed here may differ. The CogVideoX
tokenizer folders hold what the real ones hold (``spiece.model``, no ``tokenizer.json``), so they
load only with sentencepiece and protobuf installed, as the real ones do.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from senorita.testing.real_configs import differences, real_config, real_files
from senorita.testing.tiny import build_tiny_models

COG_2B = "THUDM/CogVideoX-2b"
COG_5B = "THUDM/CogVideoX-5b-I2V"
FLUX = "black-forest-labs/FLUX.1-Fill-dev"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SOFTEDGE = "lllyasviel/control_v11p_sd15_softedge"

# What a twin may shrink; every other key must equal the real checkpoint's.
DIT = {"num_attention_heads", "attention_head_dim", "num_layers", "text_embed_dim"}
SIZES = {
    "transformer": DIT | {"time_embed_dim"},
    "vae": {"block_out_channels", "layers_per_block", "norm_num_groups"},
    "text_encoder": {"d_model", "d_ff", "d_kv", "num_heads", "num_layers", "num_decoder_layers"}
    | {"vocab_size"},
    "scheduler": set(),
    "flux": DIT
    | {"num_single_layers", "axes_dims_rope", "joint_attention_dim", "pooled_projection_dim"},
    "unet": {"block_out_channels", "layers_per_block", "norm_num_groups", "attention_head_dim"}
    | {"cross_attention_dim", "conditioning_embedding_out_channels"},
    "tokenizer": {"added_tokens_decoder"},  # the extra ids follow the smaller vocabulary
}
# Written by the library or the weights' precision, not architecture flags.
WRITTEN = {"torch_dtype", "dtype", "architectures", "is_encoder_decoder", "is_decoder", "use_cache"}

# (twin folder, its subfolder, real repo, the real file, size keys, class)
DIFFUSERS_COMPONENTS = [
    ("cogvideox_2b", "transformer", COG_2B, "transformer/config.json", "transformer"),
    ("cogvideox_2b", "vae", COG_2B, "vae/config.json", "vae"),
    ("cogvideox_2b", "scheduler", COG_2B, "scheduler/scheduler_config.json", "scheduler"),
    ("cogvideox_5b_i2v", "transformer", COG_5B, "transformer/config.json", "transformer"),
    ("cogvideox_5b_i2v", "vae", COG_5B, "vae/config.json", "vae"),
    ("cogvideox_5b_i2v", "scheduler", COG_5B, "scheduler/scheduler_config.json", "scheduler"),
    ("frame_filler", "transformer", FLUX, "transformer/config.json", "flux"),
    ("frame_filler", "vae", FLUX, "vae/config.json", "vae"),
    ("frame_filler", "scheduler", FLUX, "scheduler/scheduler_config.json", "scheduler"),
    ("frame_stylizer", "unet", SD15, "unet/config.json", "unet"),
    ("frame_stylizer", "controlnet", SOFTEDGE, "config.json", "unet"),
    ("frame_stylizer", "vae", SD15, "vae/config.json", "vae"),
    ("frame_stylizer", "scheduler", SD15, "scheduler/scheduler_config.json", "scheduler"),
]
T5_ENCODERS = [
    ("cogvideox_2b", "text_encoder", COG_2B),
    ("cogvideox_5b_i2v", "text_encoder", COG_5B),
    ("frame_filler", "text_encoder_2", FLUX),
]
T5_TOKENIZERS = [
    ("cogvideox_2b", "tokenizer", COG_2B),
    ("cogvideox_5b_i2v", "tokenizer", COG_5B),
    ("remover", "tokenizer", COG_2B),
    ("inpainter", "tokenizer", COG_5B),
    ("frame_filler", "tokenizer_2", FLUX),
]


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    names = ("cogvideox_2b", "cogvideox_5b_i2v", "remover", "inpainter")
    return build_tiny_models(
        tmp_path_factory.mktemp("twins"), (*names, "frame_filler", "frame_stylizer")
    )


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _with_defaults(cls, config: dict) -> dict:
    """What loading ``config`` into ``cls`` means: its defaults for the keys a published config
    predates, and none of the keys the class does not take (diffusers ignores those)."""
    params = inspect.signature(cls.__init__).parameters
    out = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    out.update({k: v for k, v in config.items() if k in params})
    return json.loads(json.dumps(out))  # tuples as lists, as in a saved config


@pytest.mark.parametrize(
    ("family", "sub", "repo", "name", "kind"),
    DIFFUSERS_COMPONENTS,
    ids=[f"{c[0]}-{c[1]}" for c in DIFFUSERS_COMPONENTS],
)
def test_each_diffusers_component_differs_from_the_real_one_only_in_size(
    twins, family, sub, repo, name, kind
):
    import diffusers

    real = real_config(repo, name)
    cls = getattr(diffusers, real["_class_name"])
    file = "scheduler_config.json" if kind == "scheduler" else "config.json"
    twin = _load(twins[family] / sub / file)
    assert twin["_class_name"] == real["_class_name"]
    real_eff = _with_defaults(cls, real)
    twin_eff = {k: v for k, v in twin.items() if k in real_eff}
    assert differences(real_eff, twin_eff, SIZES[kind]) == []
    meta = {"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values"}
    assert set(twin) - meta <= set(real_eff) | set(real)  # nothing the real one lacks


@pytest.mark.parametrize(("family", "sub", "repo"), T5_ENCODERS, ids=[c[0] for c in T5_ENCODERS])
def test_each_t5_encoder_differs_from_t5_xxl_only_in_size(twins, family, sub, repo):
    from transformers import T5Config

    real = T5Config(**real_config(repo, f"{sub}/config.json")).to_dict()
    twin = T5Config(**_load(twins[family] / sub / "config.json")).to_dict()
    real, twin = ({k: v for k, v in d.items() if k not in WRITTEN} for d in (real, twin))
    assert differences(real, twin, SIZES["text_encoder"]) == []
    assert twin["feed_forward_proj"] == "gated-gelu" and twin["d_model"] < real["d_model"]


def test_pipelines_are_the_real_ones_with_the_real_component_classes(twins):
    for family, repo in [("cogvideox_2b", COG_2B), ("cogvideox_5b_i2v", COG_5B)]:
        index = _load(twins[family] / "model_index.json")
        assert differences(real_config(repo, "model_index.json"), index, set()) == []
    flux = _load(twins["frame_filler"] / "model_index.json")
    real = real_config(FLUX, "model_index.json")
    # transformers 5 has one T5 tokenizer class (the fast one), saved under its plain name.
    assert differences(real, flux, {"tokenizer_2"}) == []
    assert flux["tokenizer_2"] == ["transformers", "T5Tokenizer"]
    sd = _load(twins["frame_stylizer"] / "model_index.json")
    for part in ("scheduler", "text_encoder", "tokenizer", "unet", "vae"):
        assert sd[part] == real_config(SD15, "model_index.json")[part], part
    assert sd["controlnet"] == ["diffusers", real_config(SOFTEDGE)["_class_name"]]


def test_the_cogvideox_twins_keep_the_paper_s_channels_positions_and_clip_size(twins):
    base_2b = _load(twins["cogvideox_2b"] / "transformer" / "config.json")
    base_5b = _load(twins["cogvideox_5b_i2v"] / "transformer" / "config.json")
    for cfg in (base_2b, base_5b):
        assert (cfg["sample_height"], cfg["sample_width"], cfg["sample_frames"]) == (60, 90, 49)
        assert cfg["max_text_seq_length"] == 226 and cfg["out_channels"] == 16
    assert base_2b["in_channels"] == 16 and not base_2b["use_rotary_positional_embeddings"]
    assert base_5b["in_channels"] == 32 and base_5b["use_rotary_positional_embeddings"]
    assert base_5b["use_learned_positional_embeddings"]
    for expert in ("remover", "inpainter"):  # inpainting: video, masked video and mask latents
        assert _load(twins[expert] / "transformer" / "config.json")["in_channels"] == 48
    assert _load(twins["cogvideox_2b"] / "vae" / "config.json")["latent_channels"] == 16


@pytest.mark.parametrize(
    ("family", "sub", "repo"), T5_TOKENIZERS, ids=[c[0] for c in T5_TOKENIZERS]
)
def test_each_t5_tokenizer_folder_holds_the_real_folder_s_files(twins, family, sub, repo):
    real = {p.split("/", 1)[1] for p in real_files(repo) if p.startswith(f"{sub}/")}
    assert {p.name for p in (twins[family] / sub).iterdir()} == real
    twin_cfg = _load(twins[family] / sub / "tokenizer_config.json")
    assert (
        differences(real_config(repo, f"{sub}/tokenizer_config.json"), twin_cfg, SIZES["tokenizer"])
        == []
    )


@pytest.mark.parametrize("family", ["cogvideox_2b", "remover"])
def test_the_cogvideox_tokenizer_loads_through_sentencepiece_as_the_pipelines_load_it(
    twins, family
):
    """No tokenizer.json: transformers must convert spiece.model, which needs sentencepiece and
    protobuf (without them this load fails, as the real checkpoint's first job would)."""
    from transformers import AutoTokenizer, T5Tokenizer

    folder = twins[family] / "tokenizer"
    assert (folder / "spiece.model").is_file() and not (folder / "tokenizer.json").exists()
    for tokenizer in (AutoTokenizer.from_pretrained(folder), T5Tokenizer.from_pretrained(folder)):
        assert tokenizer.model_max_length == 226
        ids = tokenizer(
            "A dog runs in the park.", padding="max_length", max_length=226, truncation=True
        ).input_ids
        assert len(ids) == 226 and ids.count(tokenizer.eos_token_id) == 1
        assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1 and ids[-1] == 0
        assert tokenizer.decode(ids, skip_special_tokens=True) == "A dog runs in the park."
        assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == len(tokenizer) - 1
