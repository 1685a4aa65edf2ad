"""The tiny models of the registry's non-CogVideoX families are twins of the real checkpoints:
built from the published configs (senorita/testing/real_configs) with only sizes shrunk, the same
processor and tokenizer flags, the same token meanings and the same file kinds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from senorita.testing.real_configs import differences, folder, real_config, real_files
from senorita.testing.tiny import build_tiny_models
from senorita.testing.tiny._tokenizers import llama3_special_tokens

REPOS = {
    "depth": "depth-anything/Depth-Anything-V2-Small-hf",
    "hed": "lllyasviel/Annotators",
    "captioner": "Salesforce/blip2-opt-2.7b",
    "clip": "openai/clip-vit-large-patch14",
    "vlm": "THUDM/cogvlm2-llama3-chat-19B",
    "detector": "IDEA-Research/grounding-dino-base",
    "segmenter": "facebook/sam2.1-hiera-large",
    "llm": "meta-llama/Meta-Llama-3-8B-Instruct",
}

# Sizes: widths, depths, heads, vocabulary, image and text lengths, and the lists that follow
# the depth (which layers feed the neck). Token ids move with the vocabulary: TOKEN_KEYS.
SIZES = {
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "image_size",
    "projection_dim",
    "max_position_embeddings",
}
SIZE_KEYS = {
    "depth": SIZES
    | {"out_indices", "out_features", "stage_names", "reassemble_hidden_size"}
    | {"neck_hidden_sizes", "fusion_hidden_size", "head_hidden_size"},
    "captioner": SIZES
    | {"ffn_dim", "word_embed_proj_dim", "encoder_hidden_size", "num_query_tokens"}
    | {"image_text_hidden_size"},
    "clip": SIZES,
    "detector": SIZES
    | {"embed_dim", "depths", "num_heads", "window_size", "d_model", "num_queries"}
    | {"encoder_layers", "decoder_layers", "encoder_ffn_dim", "decoder_ffn_dim"}
    | {"encoder_attention_heads", "decoder_attention_heads", "max_text_len"},
    "llm": SIZES,
}
TOKEN_KEYS = {"bos_token_id", "eos_token_id", "pad_token_id", "image_token_index", "image_token_id"}
# What the real checkpoints' token ids mean (from their tokenizers; see each SOURCE.md).
OPT_TOKENS = {1: "<pad>", 2: "</s>", 50118: "Ċ", 50265: "<image>"}


def llama3_token(real_id: int) -> str:
    return llama3_special_tokens()[real_id - 128000]


REAL_TOKENS = {"captioner": OPT_TOKENS.__getitem__, "llm": llama3_token, "vlm": llama3_token}
# Where transformers 5 writes what the hub repos (saved by 4.x) keep elsewhere: a processor's image
# processor settings go into processor_config.json (the repos: preprocessor_config.json), a chat
# template into chat_template.jinja (the repos: tokenizer_config.json).
LIBRARY_FILES = {"chat_template.jinja", "processor_config.json"}


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("twins"), tuple(REPOS))


def loaded_config(path: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path).to_dict()


def token_differences(real: dict, twin: dict, tokens, twin_tokenizer, prefix="") -> list[str]:
    """Token-id keys whose ids do not name the same token in the real and the twin vocabulary."""
    out = []
    for key, a in real.items():
        b = twin.get(key)
        if key == "qformer_config":  # BLIP-2's Q-Former has BERT's ids, used for no text here
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += token_differences(a, b, tokens, twin_tokenizer, f"{prefix}{key}.")
        elif key in TOKEN_KEYS and a is not None:
            want = [tokens(i) for i in (a if isinstance(a, list) else [a])]
            ids = b if isinstance(b, list) else [b]
            got = twin_tokenizer.convert_ids_to_tokens(ids) if None not in ids else [None]
            if got != want:
                out.append(f"{prefix}{key}: real {want}, twin {got}")
    return out


@pytest.mark.parametrize("family", ["depth", "captioner", "clip", "detector", "llm"])
def test_twin_configs_differ_from_the_real_only_in_sizes(twins, family):
    from transformers import AutoTokenizer

    real = loaded_config(folder(REPOS[family]))
    twin = loaded_config(twins[family])
    sizes = SIZE_KEYS[family]
    tokens = REAL_TOKENS.get(family)
    skip = sizes | (TOKEN_KEYS if tokens else set())
    assert differences(real, twin, skip) == []
    if tokens:
        tokenizer = AutoTokenizer.from_pretrained(twins[family])
        assert token_differences(real, twin, tokens, tokenizer) == []
    # the shrinking is real: the twin is smaller, and the differences checked are not vacuous
    assert differences(real, twin, set()) != []


def test_llm_twin_generates_like_the_real_one(twins):
    """Same stop tokens, sampling settings and chat template as Llama 3 8B Instruct."""
    from transformers import AutoTokenizer, GenerationConfig

    real = real_config(REPOS["llm"], "generation_config.json")
    twin = GenerationConfig.from_pretrained(twins["llm"]).to_dict()
    tokenizer = AutoTokenizer.from_pretrained(twins["llm"])
    for key in ("do_sample", "temperature", "top_p", "max_length"):
        assert twin[key] == real[key], key
    assert token_differences(real, twin, llama3_token, tokenizer) == []
    flags = real_config(REPOS["llm"], "tokenizer_config.json")
    assert tokenizer.chat_template == flags["chat_template"]
    assert (tokenizer.bos_token, tokenizer.eos_token) == (flags["bos_token"], flags["eos_token"])
    specials = [t for t in tokenizer.all_special_tokens if t.startswith("<|")]
    assert set(llama3_special_tokens()) <= set(tokenizer.get_vocab())
    assert specials  # the special tokens are registered as special, not plain vocabulary
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": " Hi "}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids = tokenizer("hello world")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id  # Llama 3's post-processor prepends it
    assert tokenizer.decode(ids, skip_special_tokens=True) == "hello world"


@pytest.mark.parametrize("family", ["depth", "captioner", "clip", "detector"])
def test_twin_image_processors_differ_from_the_real_only_in_sizes(twins, family):
    from transformers import AutoImageProcessor

    real = AutoImageProcessor.from_pretrained(folder(REPOS[family]))
    twin = AutoImageProcessor.from_pretrained(twins[family])
    assert type(twin) is type(real)
    sizes = {"size", "crop_size"}
    assert differences(real.to_dict(), twin.to_dict(), sizes) == []
    assert twin.size != real.size


@pytest.mark.parametrize("family", ["captioner", "clip", "detector", "llm"])
def test_twin_tokenizers_are_the_real_kind(twins, family):
    """The class the real tokenizer_config names, and its flags and special tokens."""
    import transformers
    from transformers import AutoTokenizer

    flags = real_config(REPOS[family], "tokenizer_config.json")
    tokenizer = AutoTokenizer.from_pretrained(twins[family])
    want = getattr(transformers, flags["tokenizer_class"])
    assert isinstance(tokenizer, want)
    for key in ("do_lower_case", "model_max_length", "errors", "strip_accents"):
        if key in flags and hasattr(tokenizer, key):
            assert getattr(tokenizer, key) == flags[key], key
    for key in ("bos_token", "eos_token", "unk_token", "pad_token", "cls_token", "sep_token"):
        if key in flags:
            real = flags[key]["content"] if isinstance(flags[key], dict) else flags[key]
            assert getattr(tokenizer, key) == real, key
    assert "tokenizer.json" in real_files(REPOS[family])  # the format transformers now writes
    assert (twins[family] / "tokenizer.json").exists()


@pytest.mark.parametrize("family", ["depth", "captioner", "clip", "detector", "llm", "vlm"])
def test_twin_folders_hold_files_the_real_repos_hold(twins, family):
    real = set(real_files(REPOS[family]))
    weights = {f for f in real if re.fullmatch(r"model(-\d+-of-\d+)?\.safetensors", f)}
    assert weights, "the real checkpoint ships safetensors"
    for name in {p.name for p in twins[family].iterdir()} - LIBRARY_FILES:
        if name == "model.safetensors":
            continue  # one shard of the real's (sharded) safetensors
        assert name in real, f"{name}: not a file {REPOS[family]} holds"
    if "preprocessor_config.json" in real and family != "depth":
        saved = json.loads((twins[family] / "processor_config.json").read_text())
        assert "image_processor" in saved


def test_hed_twin_has_the_real_keys_depths_and_kernels(twins):
    real = real_config(REPOS["hed"], "ControlNetHED.pth.shapes.json")
    twin = torch.load(twins["hed"] / "ControlNetHED.pth", weights_only=True)
    assert "ControlNetHED.pth" in real_files(REPOS["hed"])
    assert sorted(twin) == sorted(real)
    for key, shape in real.items():
        got = list(twin[key].shape)
        assert len(got) == len(shape), key
        if len(shape) == 4:  # (out, in, kh, kw): kernels equal, widths shrunk
            assert got[2:] == shape[2:], key
            assert got[0] <= shape[0] and got[1] <= shape[1], key
    assert list(twin["norm"].shape) == real["norm"] == [1, 3, 1, 1]
    assert list(twin["block1.convs.0.weight"].shape)[1] == 3  # RGB in


def test_a_rebuilt_twin_is_the_same_bytes(tmp_path):
    # Each of these differed from build to build (a rerun must change nothing): torch.save names
    # its archive's folder after the file (the atomic write's random temporary name), and an
    # expert's configs recorded the temporary folder its base was built in.
    families = ("hed", "segmenter", "remover")
    builds = [build_tiny_models(tmp_path / run, families) for run in ("a", "b")]
    files = [
        {p.relative_to(tmp_path / run): p.read_bytes() for p in (tmp_path / run).rglob("*")
         if p.is_file()}
        for run in ("a", "b")
    ]  # fmt: skip
    assert len(files[0]) > 10 and files[0] == files[1]
    assert all(folder.is_dir() for build in builds for folder in build.values())


def test_sam2_twin_is_the_large_config_with_sizes_shrunk(twins):
    import sam2  # importing it registers its hydra config module
    from hydra import compose
    from omegaconf import OmegaConf

    from senorita.testing.tiny.sam2 import SAM2_CONFIG

    package = Path(sam2.__file__).parent / SAM2_CONFIG
    fixture = folder(REPOS["segmenter"]) / "sam2.1_hiera_l.yaml"
    assert package.read_text() == fixture.read_text()  # the installed sam2 ships the real one
    meta = json.loads((twins["segmenter"] / "sam2.json").read_text())
    assert meta["config"] == SAM2_CONFIG and "sam2.1_hiera_l.yaml" in real_files(REPOS["segmenter"])
    real = OmegaConf.to_container(compose(config_name=SAM2_CONFIG), resolve=True)
    twin = OmegaConf.to_container(
        compose(config_name=SAM2_CONFIG, overrides=meta["overrides"]), resolve=True
    )
    sizes = {"image_size", "embed_dim", "stages", "global_att_blocks", "window_spec"}
    sizes |= {"d_model", "num_pos_feats", "backbone_channel_list", "num_layers"}
    sizes |= {"dim_feedforward", "embedding_dim", "feat_sizes", "kv_in_dim", "out_dim"}
    sizes |= {"in_dim", "dim"}
    assert differences(real, twin, sizes) == []
    assert twin["model"]["num_maskmem"] == real["model"]["num_maskmem"] == 7
    assert twin["model"]["image_encoder"]["trunk"]["num_heads"] == 2
    # global attention inside stage 3, as the real's 23, 33, 43 are
    stages = twin["model"]["image_encoder"]["trunk"]["stages"]
    blocks = twin["model"]["image_encoder"]["trunk"]["global_att_blocks"]
    starts = [sum(stages[:i]) for i in range(len(stages))]
    assert all(starts[2] <= b < starts[3] for b in blocks)


def test_vlm_twin_carries_cogvlm2s_language_and_vision_flags(twins):
    """The VLM twin is a generic chat model (CogVLM2's remote code needs xformers and
    torchvision), with CogVLM2's Llama 3 language flags and vision flags."""
    from transformers import AutoProcessor

    from senorita.testing.tiny.vlm import LANGUAGE_KEYS, VISION_KEYS

    real = real_config(REPOS["vlm"])
    twin = loaded_config(twins["vlm"])
    text, vision = twin["text_config"], twin["vision_config"]
    processor = AutoProcessor.from_pretrained(twins["vlm"])
    sizes = SIZES | {"num_heads"}
    for key in LANGUAGE_KEYS:
        if key in TOKEN_KEYS:
            token = processor.tokenizer.convert_ids_to_tokens(text[key])
            assert token == llama3_token(real[key]), key
        elif key not in sizes:
            assert text[key] == real[key], key
    for theirs, ours in VISION_KEYS.items():
        if theirs not in sizes:
            assert vision[ours] == real["vision_config"][theirs], theirs
    llama = real_config(REPOS["llm"])
    assert text["rope_parameters"]["rope_theta"] == llama["rope_theta"]
    assert processor.tokenizer.chat_template is None or processor.chat_template
    assert "<|start_header_id|>" in processor.chat_template  # Llama 3's chat format


def test_a_chat_vlm_whose_tokenizer_has_no_pad_token_still_answers_a_batch(twins, tmp_path):
    """Llama 3 tokenizers have no pad token (CogVLM2 sets one in its config, others do not);
    batched prompts are padded, so the loader falls back to the end token as the padding."""
    import shutil

    import numpy as np

    from senorita.models import ModelSpec
    from senorita.models.vlm import ObjectLister

    folder_ = shutil.copytree(twins["vlm"], tmp_path / "vlm")
    config = json.loads((folder_ / "tokenizer_config.json").read_text())
    config.pop("pad_token")
    (folder_ / "tokenizer_config.json").write_text(json.dumps(config))
    spec = ModelSpec(
        family="vlm",
        id=str(folder_),
        device="cpu",
        batch_size=2,
        options={"max_new_tokens": 3, "min_new_tokens": 3},
    )
    lister = ObjectLister.load(spec)
    assert lister.processor.tokenizer.pad_token == "<|eot_id|>"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in range(2)]
    answers = lister(frames)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
