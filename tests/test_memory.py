"""The memory plan (``senorita plan``) of the default config: the real models, counted on the meta
device from their published configs."""

from __future__ import annotations

import json
import re

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
from transformers import T5Config, T5EncoderModel

from conftest import REPO
from senorita import memory
from senorita.cli import main
from senorita.tasks import TASKS
from senorita.testing.real_configs import folder, real_config

# Expert task -> its expert, from the task registry.
EXPERT_TASKS = {t.id: t.expert for t in TASKS if t.stage == "expert"}


@pytest.fixture(scope="module")
def default():
    config = memory.with_defaults({}, memory.SCHEMA)
    return config, {(j.rule, j.target): j for j in memory.plan(config)}


def gpu_rules() -> set[str]:
    """Rules whose resources ask for a GPU, read from the rule files."""
    found = set()
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", path.read_text(encoding="utf-8")):
            head = re.match(r"rule (\w+):", block)
            if head and re.search(r"^\s+gpu=", block, re.M):
                found.add(head.group(1))
    return found


def test_the_plan_names_every_gpu_rule_and_training_target(default):
    _, jobs = default
    assert {rule for rule, _ in jobs} == gpu_rules()
    assert {t for r, t in jobs if r == "expert_pairs"} == set(EXPERT_TASKS)
    assert {t for r, t in jobs if r == "train_expert"} == set(EXPERT_TASKS.values())
    assert {t for r, t in jobs if r == "llm_answers"} == set(EXPERT_TASKS)  # llm_instructions


def meta_params(cls, config) -> int:
    with torch.device("meta"):
        model = cls(config) if not hasattr(cls, "from_config") else cls.from_config(config)
    return sum(p.numel() for p in model.parameters())


def llama_params(cfg: dict) -> int:
    """Llama's parameters from its config, by hand: embeddings, attention (grouped KV), MLP,
    norms, and the untied output head."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h
    head = 0 if cfg.get("tie_word_embeddings") else cfg["vocab_size"] * h
    return cfg["vocab_size"] * h + layers * per_layer + h + head


@pytest.mark.parametrize("task", list(EXPERT_TASKS))
def test_weights_are_the_real_configs_parameters_times_their_bytes(default, task):
    config, jobs = default
    job = jobs["expert_pairs", task]
    base = config["experts"][EXPERT_TASKS[task]]["train"]["init"]
    transformer = dict(real_config(base, "transformer/config.json"))
    if task != "global_stylization":  # the inpainting experts: 3 × 16 input channels
        transformer.update(in_channels=48, out_channels=16)
    t5 = T5Config.from_pretrained(folder(base) / "text_encoder")
    expert = (
        meta_params(CogVideoXTransformer3DModel, transformer)
        + meta_params(T5EncoderModel, t5)
        + meta_params(AutoencoderKLCogVideoX, real_config(base, "vae/config.json"))
    )
    parts = {p.name: p for p in job.parts}
    mine = sum(parts[n].bytes for n in ("transformer", "text_encoder", "vae"))
    assert mine == pytest.approx(expert * 2, rel=0.02)  # bf16
    assert job.weights >= mine
    assert "llm" not in parts  # its answers come from the llm_answers job
    if task in ("local_stylization", "object_swap"):
        llm = llama_params(real_config(config["models"]["llm"]["id"]))
        (part,) = jobs["llm_answers", task].parts
        assert part.params == pytest.approx(llm, rel=1e-6)  # 8.03 B
        assert part.bytes == pytest.approx(llm * 2, rel=1e-6)  # float16 on a GPU


def test_peaks_are_ordered_5b_over_2b_and_training_over_nothing(default):
    _, jobs = default
    for rule, small, large in [
        ("expert_pairs", "object_removal", "global_stylization"),
        ("expert_pairs", "local_stylization", "object_swap"),
        ("train_expert", "remover", "inpainter"),
    ]:
        assert jobs[rule, large].peak > jobs[rule, small].peak
        assert jobs[rule, small].peak > jobs[rule, small].weights  # an activation on top
    # The 6-block ControlNet adds to the 2B expert; training holds AdamW state on top.
    assert (
        jobs["expert_pairs", "local_stylization"].weights
        > jobs["expert_pairs", "object_removal"].weights
    )
    assert jobs["train_expert", "remover"].weights > 1.5 * 1.73e9 * 4  # fp32 + state
    assert jobs["device_report", "once"].weights == 0


def test_offload_and_tiling_lower_the_gpu_memory(default):
    _, jobs = default
    config = memory.with_defaults(
        {"experts": {"cpu_offload": True, "vae_tiling": True}}, memory.SCHEMA
    )
    saved = {(j.rule, j.target): j for j in memory.plan(config)}
    for task in EXPERT_TASKS:
        before, after = jobs["expert_pairs", task], saved["expert_pairs", task]
        assert after.weights < before.weights - 9e9  # T5-XXL (9.5 GB) no longer resident
        assert after.peak < before.peak
        assert after.host >= before.host  # the offloaded weights wait in host memory
    assert (
        saved["expert_pairs", "object_removal"].activation[1]
        < jobs["expert_pairs", "object_removal"].activation[1]
    )


def test_vae_tiling_caps_the_decoded_area():
    vae = real_config("THUDM/CogVideoX-2b", "vae/config.json")
    whole = memory.vae_activation(vae, 336, 592, "bfloat16", tiling=False, decode=True)
    tiled = memory.vae_activation(vae, 336, 592, "bfloat16", tiling=True, decode=True)
    assert whole == memory.DECODE_LIVE * 128 * 9 * 336 * 592 * 2
    assert tiled < 0.65 * whole  # 280 × 432 tiles (240 × 360 and their overlap)
    small = memory.vae_activation(vae, 64, 112, "bfloat16", tiling=True, decode=True)
    assert small == memory.vae_activation(vae, 64, 112, "bfloat16", tiling=False, decode=True)


def test_dit_tokens_are_text_plus_latent_patches():
    cfg = real_config("THUDM/CogVideoX-2b", "transformer/config.json")
    assert memory.latent_tokens(cfg, 33, 336, 592) == 9 * 21 * 37
    act = memory.dit_inference(cfg, 33, 336, 592, batch=2, dtype="bfloat16")
    assert act == memory.FFN_LIVE * 2 * (226 + 6993) * 1920 * 2


def test_schema_host_memory_defaults_agree_with_the_plan(default):
    config, jobs = default
    for (rule, target), job in jobs.items():
        if rule not in memory.MEM_KEYS:
            continue
        key = memory.MEM_KEYS[rule].format(expert=EXPERT_TASKS.get(target, target))
        value = config
        for k in key.split("."):
            value = value[k]
        need = memory.host_mem_mb(job)
        assert value >= need, f"{key} {value} < the plan's {need} for {rule} {target}"
        if not job.unknown:  # else the plan is a lower bound
            assert value <= 2 * need + 16000, f"{key} {value}: far above the plan's {need}"


def test_unknown_models_are_said_unknown_not_guessed(default):
    config, jobs = default
    masks = jobs["masks", "every shard"]
    vlm = next(p for p in masks.parts if p.name == "vlm")
    assert config["models"]["vlm"]["id"] == "THUDM/cogvlm2-llama3-chat-19B"
    assert vlm.params is None and masks.unknown == [f"vlm ({vlm.model})"]
    assert "≥" in memory.table([masks])


def test_the_cli_prints_the_table_and_json(default, capsys):
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| rule | target | GPUs |")
    for task in EXPERT_TASKS:
        assert f"| expert_pairs | {task} | 1 |" in out
    assert main(["plan", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    removal = next(r for r in rows if r["target"] == "object_removal")
    assert removal["peak_gb"] > removal["weights_gb"] > 10


def test_super_resolution_adds_its_model_to_every_expert_job_and_its_training(default):
    _, jobs = default
    assert ("train_expert", "super_resolver") not in jobs  # the stage is off by default
    on = memory.with_defaults({"experts": {"super_resolution": {"enabled": True}}}, memory.SCHEMA)
    lifted = {(j.rule, j.target): j for j in memory.plan(on)}
    for task in EXPERT_TASKS:
        before, after = jobs["expert_pairs", task], lifted["expert_pairs", task]
        added = {p.name for p in after.parts} - {p.name for p in before.parts}
        assert added == {f"super_resolver.{c}" for c in ("text_encoder", "transformer", "vae")}
        # 2B widened to 32 input channels: T5-XXL 4.76 B, transformer 1.73 B, VAE 0.22 B.
        assert after.weights - before.weights == pytest.approx(2 * 6.7e9, rel=0.02)
        assert after.peak > before.peak
    # The VAE decodes 672 x 1184 whole: 4x the clip's area; tiled, far less.
    removal = lifted["expert_pairs", "object_removal"]
    assert removal.activation[0] == "super_resolver VAE decode (672x1184)"
    tiled = memory.with_defaults(
        {"experts": {"super_resolution": {"enabled": True}, "vae_tiling": True}}, memory.SCHEMA
    )
    tiled_jobs = {(j.rule, j.target): j for j in memory.plan(tiled)}
    assert tiled_jobs["expert_pairs", "object_removal"].peak < removal.peak - 20e9
    train = lifted["train_expert", "super_resolver"]
    assert {p.name for p in train.parts} == {"text_encoder", "transformer", "vae"}
