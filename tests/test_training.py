"""Training the experts (issue: the pipeline's own annotated clips, tiny models, CPU).

Most data come from the embedded default's run (its clips, masks, control maps and captions),
read from its run directory as a Snakemake job does (the tables' paths are relative to it); the
tests of what a sample holds frame by frame use small annotated clips made here, whose frames
carry their index. The base models are tiny random CogVideoX pipelines.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from snakemake.utils import validate

from conftest import REPO
from senorita.experts import PIPELINES
from senorita.masks import save_masks
from senorita.testing.tiny import build_tiny_models
from senorita.training.build import build_expert, trainable_parameters, weight_dtypes
from senorita.training.loop import (
    checkpoints,
    conditioning,
    optimizer_step,
    prepare_training,
    train_expert,
)
from senorita.training.views import AnnotatedClips, ExpertView, patterns_for
from senorita.video import write_frames

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BASE = {
    "remover": "cogvideox_2b",
    "local_stylizer": "cogvideox_2b",
    "inpainter": "cogvideox_5b_i2v",
    "global_stylizer": "cogvideox_5b_i2v",
}
# And the super-resolver, which the demo does not train (its stage is off there).
BASES = {**BASE, "super_resolver": "cogvideox_2b"}
SMALL = {"frames": 9, "height": 32, "width": 48, "controlnet_layers": 1}


@pytest.fixture(autouse=True)
def in_the_run_directory(request, monkeypatch):
    """Tests on the demo's data run in its run directory (its tables' paths are relative)."""
    if "demo_run" in request.fixturenames:
        monkeypatch.chdir(request.getfixturevalue("demo_run"))


RESULTS = Path("results")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("bases"), ("cogvideox_2b", "cogvideox_5b_i2v"))


def train_cfg(expert: str, bases, **overrides) -> dict:
    config = {
        "experts": {expert: {"train": {"init": str(bases[BASES[expert]]), **SMALL, **overrides}}}
    }
    validate(config, str(SCHEMA))  # the schema's defaults, as a run gets them
    return config["experts"][expert]["train"]


def view(demo_run, expert, bases, **overrides) -> ExpertView:
    cfg = train_cfg(expert, bases, **overrides)
    data = AnnotatedClips(patterns_for(expert, RESULTS), 2, cfg)
    return ExpertView(expert, data, cfg)


# Each view's sample types at the default proportions (views.py's recipes).
PROPORTIONS = {
    "remover": {"unrelated": 0.9, "own": 0.1},
    "inpainter": {"shapes": 0.25, "rectangles": 0.25, "sam2": 0.25, "boxes": 0.25},
    "global_stylizer": {"caption": 1.0},
    "local_stylizer": {"own": 1.0},
}


@pytest.mark.parametrize(("expert", "expected"), list(PROPORTIONS.items()))
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
    kinds = set(PROPORTIONS[expert])  # every kind the view draws, each checked below
    seen = set()
    # At least 12 samples, then on until every kind has come (seeded: the same ones each run);
    # the rarest, the remover's 10% "own", comes within 100 with odds of 1 - 3e-5.
    for i in range(100):
        if i >= 12 and seen == kinds:
            break
        s = v.sample(rng)
        seen.add(s.kind)
        assert s.frames.shape == (9, 32, 48, 3) and s.frames.dtype == np.uint8
        if expert == "inpainter":
            assert not s.mask[0].any()  # frame 0 is given
        if expert in ("remover", "inpainter", "local_stylizer"):
            assert s.mask.shape == (9, 32, 48) and s.mask.dtype == bool
            prefix = {
                ("remover", "unrelated"): "Remove ",
                ("remover", "own"): "Generate ",
                ("local_stylizer", "own"): "It's ",
                ("inpainter", "sam2"): "It's ",
                ("inpainter", "boxes"): "It's ",
            }
            if (expert, s.kind) in prefix and not s.prompt_dropped:
                assert s.prompt.startswith(prefix[expert, s.kind]), (s.kind, s.prompt)
        assert (s.controls is not None) == (expert in ("local_stylizer", "global_stylizer"))
        if s.controls is not None:
            assert [c.shape for c in s.controls] == [(9, 32, 48, 3)] * 3
    assert seen == kinds  # every kind drawn, and none the view should not make
    inputs = conditioning(pipe, expert, [v.sample(rng), v.sample(rng)])
    latent = pipe.vae.config.latent_channels  # 16, as CogVideoX's VAE
    assert latent == 16
    assert inputs["latents"].shape == (2, 3, latent, 4, 6)  # 9 frames -> 3 latent frames, /8
    channels = pipe.transformer.config.in_channels - latent  # what it takes beside x_t
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
    # Training moved every parameter that trains (the zero-initialised ones included) and no
    # weight the recipe freezes: compared tensor by tensor with the expert it started from
    # (built in the run's dtypes: the 5B-I2V's float64 positional table is read through fp32).
    base = build_expert(expert, cfg, weight_dtypes(record["mixed_precision"]))
    trainable_parameters(base, expert, cfg["parts"])  # marks what the recipe trains
    components = ["transformer", "vae", "text_encoder"]
    assert (base.controlnet is not None) == (expert in ("local_stylizer", "global_stylizer"))
    if base.controlnet is not None:
        components.append("controlnet")
    trained, frozen, moved = set(), set(), set()
    for part in components:
        before, after = getattr(base, part), getattr(pipe, part)
        trains = {k for k, p in before.named_parameters() if p.requires_grad}
        a, b = before.state_dict(), after.state_dict()
        assert a.keys() == b.keys(), part
        for key in a:
            name = f"{part}.{key}"
            (trained if key in trains else frozen).add(name)
            if not torch.equal(a[key], b[key]):
                moved.add(name)
    assert trained and frozen
    assert moved == trained, (sorted(trained - moved)[:10], sorted(moved - trained)[:10])
    # What the recipe names, for this expert's parts.
    if expert == "global_stylizer":
        assert cfg["parts"] == ["controlnet"]  # the schema's default: the recipe trains only it
    if "transformer" in cfg["parts"]:
        assert {
            "transformer.patch_embed.proj.weight",
            "transformer.transformer_blocks.0.ff.net.0.proj.weight",
            "transformer.transformer_blocks.1.attn1.to_q.weight",
            "transformer.proj_out.weight",
        } <= trained
        assert {
            "transformer.transformer_blocks.1.ff.net.0.proj.weight",
            "transformer.transformer_blocks.1.norm1.linear.weight",
            "transformer.norm_final.weight",
        } <= frozen
        if expert in ("remover", "local_stylizer", "inpainter"):  # widened: new channels zero
            key = "patch_embed.proj.weight"
            config = json.loads((Path(cfg["init"]) / "transformer" / "config.json").read_text())
            new = slice(config["in_channels"], None)  # past the base checkpoint's channels
            assert pipe.transformer.config.in_channels == 48 > config["in_channels"]
            assert not base.transformer.state_dict()[key][:, new].any()
            assert pipe.transformer.state_dict()[key][:, new].any()
    else:  # the global stylizer trains its ControlNet alone: the transformer stays the base's
        assert not any(k.startswith("transformer.") for k in trained)
    if "controlnet" in cfg["parts"]:  # the zero-initialised layers, and its first block
        assert {
            "controlnet.control_embed.weight",
            "controlnet.projections.0.weight",
            "controlnet.transformer_blocks.0.attn1.to_q.weight",
            "controlnet.patch_embed.proj.weight",
        } <= trained
        assert {"controlnet.time_embedding.linear_1.weight"} <= frozen
    assert not any(k.startswith(("vae.", "text_encoder.")) for k in trained)


@pytest.mark.parametrize("expert", ["remover", "global_stylizer"])
def test_the_loss_falls_when_overfitting_one_batch(demo_run, bases, expert, tmp_path):
    cfg = train_cfg(
        expert, bases, steps=12, fixed_batch=True, learning_rate=3e-3, checkpoint_every=100
    )
    train_expert(expert, cfg, patterns_for(expert, RESULTS), 2, tmp_path / "f", tmp_path / "w")
    rows = (tmp_path / "w" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert len(losses) == 12 and np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_cached_latents_train_exactly_as_fresh_ones(demo_run, bases, tmp_path):
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


@pytest.mark.parametrize("expert", ["remover", "super_resolver"])
def test_a_killed_job_resumes_and_ends_where_an_uninterrupted_one_does(
    demo_run, bases, tmp_path, expert
):
    # A warmup longer than the first checkpoint: the resumed schedule must go on from it.
    cfg = train_cfg(expert, bases, steps=10, checkpoint_every=2, keep_checkpoints=3, warmup_steps=6)
    common = [
        sys.executable, "-m", "senorita.cli", "train-expert", "--expert", expert,
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
    lrs = [float(r.split(",")[2]) / cfg["learning_rate"] for r in log]
    assert lrs == pytest.approx([min(i / 6, 1) for i in range(1, 11)])  # one per optimizer step
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


def test_only_finished_checkpoints_count_for_a_resume(tmp_path):
    """A kill can leave a checkpoint without its state, or with its state but not yet renamed
    from ``.tmp``: a resumed run (and anything polling) sees only the finished ones, by step."""
    for name, state in [("checkpoint-000010", True), ("checkpoint-000002", True),
                        ("checkpoint-000012.tmp", True), ("checkpoint-000014", False)]:  # fmt: skip
        (tmp_path / name).mkdir()
        if state:
            (tmp_path / name / "state.json").write_text("{}")
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-000002", "checkpoint-000010"]


def test_the_demo_expert_tasks_use_the_checkpoints_trained_in_the_run(demo_run):
    for expert in BASE:
        final = demo_run / "results" / "training" / expert / "final"
        assert json.loads((final / "training.json").read_text())["expert"] == expert
        assert (final / "model_index.json").exists()
        check = json.loads((demo_run / f"results/experts/{expert}.checkpoint.json").read_text())
        assert check["id"] == f"results/training/{expert}/final"
    assert Path(demo_run / "results/training/remover/work/loss.png").exists()


# -- small annotated clips whose frames carry their index ------------------------------------------

CLIP_FRAMES = 33  # the clips stage's default: 33 frames, its stride already applied


def indexed(n: int, offset: int = 0) -> np.ndarray:
    """(n, 32, 48, 3) frames, frame i a flat grey of 10 + offset + 6 i (distinct after H.264)."""
    values = (10 + offset + 6 * np.arange(n)).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(values[:, None, None, None], (n, 32, 48, 3)))


def frame_index(frames: np.ndarray, offset: int = 0) -> list[int]:
    return [round((float(f.mean()) - 10 - offset) / 6) for f in frames]


def annotate(root: Path, lengths: dict[str, int]) -> Path:
    """One shard of annotated clips (tables as the stages write them): clip ``c`` has
    ``lengths[c]`` frames, one object whose mask covers the first i + 1 columns in frame i,
    HED/Canny/depth maps with the frame index too, and a caption."""
    clips, objects, maps, captions = [], [], [], []
    for clip_id, n in lengths.items():
        path = root / "clips" / f"{clip_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_frames(path, indexed(n), fps=12)
        clips.append({"clip_id": clip_id, "path": str(path)})
        mask = np.zeros((1, n, 32, 48), bool)
        for i in range(n):
            mask[0, i, :, : i + 1] = True
        save_masks(root / "masks" / f"{clip_id}.masks.npz", mask)
        objects.append(
            {
                "clip_id": clip_id,
                "object": 0,
                "phrase": f"the {clip_id} cat",
                "mask_path": str(root / "masks" / f"{clip_id}.masks.npz"),
            }
        )
        for k, kind in enumerate(("hed", "canny", "depth")):
            control = root / "control" / f"{clip_id}.{kind}.mp4"
            control.parent.mkdir(parents=True, exist_ok=True)
            write_frames(control, indexed(n, offset=k), fps=12)
            maps.append({"clip_id": clip_id, "kind": kind, "path": str(control)})
        captions.append({"clip_id": clip_id, "caption": f"a video of {clip_id}"})
    for table, rows in (
        ("clips", clips),
        ("masks", objects),
        ("control", maps),
        ("captions", captions),
    ):
        (root / table).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(root / table / "00000.parquet")
    return root


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    return annotate(tmp_path_factory.mktemp("annotated"), {"a": CLIP_FRAMES, "b": CLIP_FRAMES})


def made_view(root: Path, expert: str, bases, **overrides) -> ExpertView:
    cfg = train_cfg(expert, bases, **overrides)
    return ExpertView(expert, AnnotatedClips(patterns_for(expert, root), 1, cfg), cfg)


@pytest.mark.parametrize("frames", [9, 33])
def test_samples_are_the_clip_s_frames_as_cut_never_strided_again_or_padded(
    annotated, bases, frames
):
    # The clips stage cut each clip at stride 2: training reads its frames one after another.
    v = made_view(annotated, "local_stylizer", bases, frames=frames)
    s = v.sample(np.random.default_rng(0))
    assert s.frames.shape == (frames, 32, 48, 3)
    assert frame_index(s.frames) == list(range(frames))  # consecutive, no frozen tail
    assert [int(m[0].sum()) for m in s.mask] == [i + 1 for i in range(frames)]
    for k, control in enumerate(s.controls):
        assert frame_index(control, offset=k) == list(range(frames))


def test_a_clip_too_short_for_a_sample_is_an_error_naming_it(bases, tmp_path):
    root = annotate(tmp_path, {"long": CLIP_FRAMES, "short": 5})
    data = AnnotatedClips(patterns_for("remover", root), 1, train_cfg("remover", bases))
    short = data.paths["short"]
    with pytest.raises(ValueError, match=re.escape(short) + ".*5 frames.*takes 9"):
        data.frames(short)
    row = next(o for o in data.objects.to_dict("records") if o["clip_id"] == "short")
    with pytest.raises(ValueError, match=r"short\.masks\.npz.*5 frames"):
        data.mask(row)
    assert data.frames(data.paths["long"]).shape == (9, 32, 48, 3)


@pytest.mark.parametrize("expert", list(BASE))
def test_prompts_are_dropped_at_the_configured_rate_for_guidance(annotated, bases, expert):
    # Every expert runs with classifier-free guidance against the empty prompt: it must see it.
    def prompts(p: float, seed: int) -> list[tuple[str, bool]]:
        v = made_view(annotated, expert, bases, prompt_dropout=p)
        # Prompts only: the videos (read and checked above) are left unread, blank.
        v.data.frames = lambda path: np.zeros((9, 32, 48, 3), np.uint8)
        v.data.mask = lambda row: np.zeros((9, 32, 48), bool)
        v.data.controls = lambda clip_id: [np.zeros((9, 32, 48, 3), np.uint8)] * 3
        rng = np.random.default_rng(seed)
        return [(s.prompt, s.prompt_dropped) for s in (v.sample(rng) for _ in range(40))]

    half = prompts(0.5, 0)
    dropped = [prompt for prompt, was in half if was]
    assert 8 <= len(dropped) <= 32 and set(dropped) == {""}, half
    assert all(prompt for prompt, was in half if not was)
    assert prompts(0.5, 0) == half  # drawn from the seeded generator: a resumed step redraws them
    assert not any(was for _, was in prompts(0.0, 1))
    assert train_cfg(expert, bases)["prompt_dropout"] == 0.1  # the default


def test_frozen_parts_are_held_in_the_mixed_precision_dtype():
    bf16, fp32 = torch.bfloat16, torch.float32
    dtypes = weight_dtypes("bf16")
    assert (dtypes["text_encoder"], dtypes["vae"], dtypes["default"]) == (bf16, bf16, fp32)
    assert set(weight_dtypes("no").values()) == {fp32}
    assert weight_dtypes("fp16")["text_encoder"] == torch.float16


def _saved_dtypes(folder: Path) -> set:
    from safetensors import safe_open

    found = set()
    for path in folder.glob("*.safetensors"):
        with safe_open(path, "pt") as fh:
            found |= {fh.get_slice(k).get_dtype() for k in fh.keys()}  # noqa: SIM118
    return found


@pytest.fixture
def fresh_accelerate():
    """accelerate's state is one per process and keeps its first mixed precision: start this
    test afresh and leave the next one a fresh state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("expert", ["remover", "global_stylizer"])
def test_a_bf16_run_holds_t5_and_vae_in_bf16_and_what_trains_in_fp32(
    annotated, bases, expert, tmp_path, fresh_accelerate
):
    cfg = train_cfg(expert, bases, steps=1, mixed_precision="bf16", checkpoint_every=1)
    out = train_expert(
        expert, cfg, patterns_for(expert, annotated), 1, tmp_path / "final", tmp_path / "work"
    )
    record = json.loads((out / "training.json").read_text())
    assert record["mixed_precision"] == "bf16" and np.isfinite(record["final_loss"])
    assert _saved_dtypes(out / "text_encoder") == {"BF16"}
    assert _saved_dtypes(out / "vae") == {"BF16"}
    low = {"BF16", "F16"}
    assert "F32" in _saved_dtypes(out / "transformer")
    assert not _saved_dtypes(out / "transformer") & low
    if expert == "global_stylizer":  # what trains
        assert "F32" in _saved_dtypes(out / "controlnet")
        assert not _saved_dtypes(out / "controlnet") & low
    # AdamW's state follows the fp32 master weights.
    state = torch.load(checkpoints(tmp_path / "work")[-1] / "optimizer.bin", weights_only=False)
    moments = [t for s in state["state"].values() for t in s.values() if t.dim() > 0]
    assert moments and {t.dtype for t in moments} == {torch.float32}


def test_the_learning_rate_schedule_steps_once_per_optimizer_step(monkeypatch, tmp_path):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    cfg = {"learning_rate": 1.0, "weight_decay": 0.0, "warmup_steps": 10}

    def processes(n: int) -> None:  # AcceleratorState() copies PartialState's on creation
        for state in (PartialState, AcceleratorState):
            monkeypatch.setitem(state._shared_state, "num_processes", n)
        assert AcceleratorState().num_processes == n

    def run(steps: int, resume: Path | None = None):
        accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        params = list(model.parameters())
        (model,), optimizer, lr_scheduler = prepare_training(accelerator, [model], params, cfg)
        if resume is not None:
            accelerator.load_state(str(resume))
        # As on 4 GPUs: accelerate's prepared scheduler would step 4 times per optimizer step.
        processes(4)
        for _ in range(steps):
            for _ in range(2):  # micro-batches of one accumulated step
                with accelerator.accumulate(model):
                    accelerator.backward(model(torch.ones(2, 3)).pow(2).mean())
                    optimizer_step(accelerator, optimizer, lr_scheduler, params, 1.0)
        processes(1)
        return accelerator, optimizer, lr_scheduler

    accelerator, optimizer, lr_scheduler = run(3)
    assert lr_scheduler.get_last_lr()[0] == pytest.approx(3 / 10)  # 3 of 10 warmup steps
    assert optimizer.param_groups[0]["lr"] == pytest.approx(3 / 10)
    # A checkpoint holds the schedule: resumed, it goes on from step 3.
    accelerator.save_state(str(tmp_path / "ckpt"))
    _, _, resumed = run(2, resume=tmp_path / "ckpt")
    assert resumed.get_last_lr()[0] == pytest.approx(5 / 10)


def test_training_logs_its_progress_in_steps(annotated, bases, tmp_path, caplog):
    cfg = train_cfg("remover", bases, steps=2, checkpoint_every=10)
    with caplog.at_level(logging.INFO, logger="senorita.training.loop"):
        patterns = patterns_for("remover", annotated)
        train_expert("remover", cfg, patterns, 1, tmp_path / "f", tmp_path / "w")
    lines = [r.getMessage() for r in caplog.records if "steps," in r.getMessage()]
    pattern = r"training the remover: 2/2 steps, [0-9.e+-]+/s, elapsed \S+"
    assert any(re.fullmatch(pattern + r"(, left ~\S+)?", line) for line in lines), lines
