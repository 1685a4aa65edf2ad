"""Training the experts (issue: the pipeline's own annotated clips, tiny models, CPU).

The data come from the embedded default's run (its clips, masks, control maps and captions),
read from its run directory as a Snakemake job does (the tables' paths are relative to it); the
base models are tiny random CogVideoX pipelines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from snakemake.utils import validate

from conftest import REPO
from senorita.experts import PIPELINES
from senorita.testing.tiny import build_tiny_models
from senorita.training.build import build_expert, trainable_parameters
from senorita.training.loop import checkpoints, conditioning, train_expert
from senorita.training.views import AnnotatedClips, ExpertView, patterns_for

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BASE = {
    "remover": "cogvideox_2b",
    "local_stylizer": "cogvideox_2b",
    "inpainter": "cogvideox_5b_i2v",
    "global_stylizer": "cogvideox_5b_i2v",
}
SMALL = {"frames": 9, "stride": 2, "height": 32, "width": 48, "controlnet_layers": 1}


@pytest.fixture(autouse=True)
def in_the_run_directory(demo_run, monkeypatch):
    monkeypatch.chdir(demo_run)


RESULTS = Path("results")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("bases"), ("cogvideox_2b", "cogvideox_5b_i2v"))


def train_cfg(expert: str, bases, **overrides) -> dict:
    config = {
        "experts": {expert: {"train": {"init": str(bases[BASE[expert]]), **SMALL, **overrides}}}
    }
    validate(config, str(SCHEMA))  # the schema's defaults, as a run gets them
    return config["experts"][expert]["train"]


def view(demo_run, expert, bases, **overrides) -> ExpertView:
    cfg = train_cfg(expert, bases, **overrides)
    data = AnnotatedClips(patterns_for(expert, RESULTS), 2, cfg)
    return ExpertView(expert, data, cfg)


@pytest.mark.parametrize(
    ("expert", "expected"),
    [
        ("remover", {"unrelated": 0.9, "own": 0.1}),
        ("inpainter", {"shapes": 0.25, "rectangles": 0.25, "sam2": 0.25, "boxes": 0.25}),
        ("global_stylizer", {"caption": 0.9, "empty": 0.1}),
        ("local_stylizer", {"own": 1.0}),
    ],
)
def test_each_view_draws_its_sample_types_in_the_configured_proportions(
    demo_run, bases, expert, expected
):
    rng = np.random.default_rng(0)
    v = view(demo_run, expert, bases)
    counts = Counter(v.kind(rng) for _ in range(4000))
    for kind, p in expected.items():
        assert counts[kind] / 4000 == pytest.approx(p, abs=0.025), (kind, counts)
    # Proportions are config values.
    if expert == "remover":
        skewed = view(demo_run, expert, bases, unrelated_mask=0.5)
        counts = Counter(skewed.kind(rng) for _ in range(4000))
        assert counts["own"] / 4000 == pytest.approx(0.5, abs=0.025)


@pytest.mark.parametrize("expert", list(BASE))
def test_samples_become_tensors_of_the_expert_s_shapes(demo_run, bases, expert):
    v = view(demo_run, expert, bases)
    pipe = build_expert(expert, train_cfg(expert, bases))
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(12):
        s = v.sample(rng)
        seen.add(s.kind)
        assert s.frames.shape == (9, 32, 48, 3) and s.frames.dtype == np.uint8
        if expert == "inpainter":
            assert not s.mask[0].any()  # frame 0 is given
        if expert in ("remover", "inpainter", "local_stylizer"):
            assert s.mask.shape == (9, 32, 48) and s.mask.dtype == bool
            prefix = {"remover": ("Remove ", "Generate "), "local_stylizer": ("It's ",)}
            if expert in prefix:
                assert s.prompt.startswith(prefix[expert])
        if s.controls is not None:
            assert [c.shape for c in s.controls] == [(9, 32, 48, 3)] * 3
    assert seen == set(v.kind(np.random.default_rng(0)) for _ in range(1)) | seen  # drawn kinds
    inputs = conditioning(pipe, expert, [v.sample(rng), v.sample(rng)])
    assert inputs["latents"].shape == (2, 3, 4, 4, 6)  # 9 frames -> 3 latent frames, /8 space
    channels = pipe.transformer.config.in_channels - 4  # what the transformer takes beside x_t
    assert inputs["condition"].shape == (2, 3, channels, 4, 6)
    if pipe.controlnet is not None:
        assert inputs["control"].shape == (2, 3, pipe.controlnet.config.control_channels, 4, 6)
    assert inputs["embeds"].shape[:2] == (2, pipe.transformer.config.max_text_seq_length)


def test_the_recipe_freezes_norms_and_ffn_after_the_first_block(bases):
    pipe = build_expert("local_stylizer", train_cfg("local_stylizer", bases))
    trainable_parameters(pipe, "local_stylizer", ["transformer", "controlnet"])
    grads = {k for k, p in pipe.transformer.named_parameters() if p.requires_grad}
    assert any(k.startswith("transformer_blocks.0.ff.") for k in grads)
    assert not any(k.startswith("transformer_blocks.1.ff.") for k in grads)
    assert not any(k.startswith("transformer_blocks.1.norm1.") for k in grads)
    assert any(k.startswith("transformer_blocks.1.attn1.") for k in grads)
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())
    assert not any(p.requires_grad for p in pipe.vae.parameters())
    control = {k for k, p in pipe.controlnet.named_parameters() if p.requires_grad}
    assert {"control_embed.weight", "projections.0.weight"} <= control


@pytest.mark.parametrize("expert", list(BASE))
def test_a_few_steps_train_and_the_result_loads_as_the_expert(demo_run, bases, expert, tmp_path):
    cfg = train_cfg(expert, bases, steps=2, checkpoint_every=1)
    out = train_expert(
        expert,
        cfg,
        patterns_for(expert, RESULTS),
        2,
        tmp_path / "final",
        tmp_path / "work",
    )
    losses = (tmp_path / "work" / "loss.csv").read_text().splitlines()[1:]
    assert len(losses) == 2 and all(np.isfinite(float(r.split(",")[1])) for r in losses)
    assert (tmp_path / "work" / "loss.png").exists()
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 2 and record["expert"] == expert
    pipe = PIPELINES[expert].from_pretrained(out)
    assert type(pipe).__name__ == PIPELINES[expert].__name__
    # Training moved what trains (the zero-initialised parts included) and nothing frozen.
    base = build_expert(expert, cfg)
    moved = lambda a, b: not torch.equal(a, b)  # noqa: E731
    if "transformer" in cfg["parts"]:
        assert moved(
            pipe.transformer.patch_embed.proj.weight, base.transformer.patch_embed.proj.weight
        )
    if "controlnet" in cfg["parts"]:
        assert moved(pipe.controlnet.projections[0].weight, base.controlnet.projections[0].weight)
    assert torch.equal(pipe.vae.encoder.conv_in.conv.weight, base.vae.encoder.conv_in.conv.weight)


@pytest.mark.parametrize("expert", ["remover", "global_stylizer"])
def test_the_loss_falls_when_overfitting_one_batch(demo_run, bases, expert, tmp_path):
    cfg = train_cfg(
        expert, bases, steps=12, fixed_batch=True, learning_rate=3e-3, checkpoint_every=100
    )
    train_expert(expert, cfg, patterns_for(expert, RESULTS), 2, tmp_path / "f", tmp_path / "w")
    rows = (tmp_path / "w" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert len(losses) == 12 and np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_cached_latents_train_exactly_as_fresh_ones(bases, tmp_path):
    losses = {}
    for cached in (False, True):
        cfg = train_cfg("remover", bases, steps=3, checkpoint_every=10, cache_latents=cached)
        work = tmp_path / f"work-{cached}"
        train_expert(
            "remover", cfg, patterns_for("remover", RESULTS), 2, tmp_path / f"f-{cached}", work
        )
        losses[cached] = (work / "loss.csv").read_text()
    assert losses[True] == losses[False]
    cache = tmp_path / "work-True" / "cache"
    assert list(cache.glob("video-*.pt")) and list(cache.glob("text-*.pt"))
    assert not (tmp_path / "work-False" / "cache").exists()


def test_a_killed_job_resumes_and_ends_where_an_uninterrupted_one_does(demo_run, bases, tmp_path):
    expert = "remover"
    cfg = train_cfg(expert, bases, steps=10, checkpoint_every=2, keep_checkpoints=3)
    common = [
        sys.executable, "-m", "senorita.cli", "train", "--expert", expert,
        "--params", json.dumps(cfg), "--results", "results", "--shards", "2",
    ]  # fmt: skip
    work, out = tmp_path / "work", tmp_path / "final"
    job = [*common, "--work", str(work), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = {"env": env, "cwd": demo_run, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen(job, start_new_session=True, **run)
    deadline = time.monotonic() + 300
    while not checkpoints(work) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = checkpoints(work)
    assert done and not out.exists(), "the job finished before it could be killed"
    killed_at = json.loads((done[-1] / "state.json").read_text())["step"]
    assert killed_at < 10
    subprocess.run(job, check=True, **run)
    log = (work / "loss.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in log] == list(range(1, 11))
    # The same run without the kill.
    straight = [*common, "--work", str(tmp_path / "w2"), "--out", str(tmp_path / "f2")]
    subprocess.run(straight, check=True, **run)
    a = PIPELINES[expert].from_pretrained(out).transformer.state_dict()
    b = PIPELINES[expert].from_pretrained(tmp_path / "f2").transformer.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert log == (tmp_path / "w2" / "loss.csv").read_text().splitlines()[1:]
    assert len(checkpoints(work)) <= 3


def test_the_demo_expert_tasks_use_the_checkpoints_trained_in_the_run(demo_run):
    for expert in BASE:
        final = demo_run / "results" / "training" / expert / "final"
        assert json.loads((final / "training.json").read_text())["expert"] == expert
        assert (final / "model_index.json").exists()
        check = json.loads((demo_run / f"results/experts/{expert}.checkpoint.json").read_text())
        assert check["id"] == f"results/training/{expert}/final"
    assert Path(demo_run / "results/training/remover/work/loss.png").exists()
