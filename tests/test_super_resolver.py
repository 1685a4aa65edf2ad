"""The super-resolver (issue #14): its pipeline and tiles, the re-cut of a clip from its original
video, the degradation chain, and its training, on tiny CogVideoX-2B twins (CPU).

Sizes are the experts' shrunk: clips of 9 × 64 × 112, re-cut at 2 × (128 × 224). The tiny
3D VAE is most of a CPU run's time (6 s to decode 9 × 128 × 224 on 2 busy cores), so the
pipeline lifts 9 × 32 × 56 to 64 × 112 and training's target size is 64 × 112. The videos are
made here: a textured, moving source (detail at several scales, smooth colour, like a
photograph) cut by the clips stage's own ``cut_clip``, with an ingest table naming it.
"""

from __future__ import annotations

import itertools
import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from snakemake.utils import validate

from conftest import REPO
from senorita.clips import cut_clip
from senorita.degrade import DEFAULTS, degradation_params, degrade, draw_degradation
from senorita.experts import PIPELINES, SuperResolverPipeline
from senorita.experts.pipeline import cpu_generator
from senorita.experts.tiling import LatentTiles, spread
from senorita.recut import cover_crop, recut
from senorita.testing.tiny import build_tiny_models
from senorita.training import loop
from senorita.training.build import build_expert, trainable_parameters
from senorita.training.loop import checkpoints, conditioning, train_expert
from senorita.training.views import AnnotatedClips, ExpertView, patterns_for
from senorita.video import read_frames, write_frames

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
T, H, W = 9, 64, 112  # the clip (the experts' output, shrunk)
HIGH = (128, 224)  # the clip's 2 × re-cut
LOW, OUT = (32, 56), (64, 112)  # the pipeline's input and output; OUT is training's size too
CLIP_CFG = {"frames": T, "height": H, "width": W, "crf": 18, "preset": "medium"}
# Source sizes whose cover-and-crop rounds: 200 × 360 scales to 115 × 64 and crops from x = 2
# (1.5 rounded half to even), 362 × 200 (portrait) to 112 × 203 from y = 70 (69.5).
SOURCES = {"wide": (200, 360), "tall": (362, 200)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def texture(height: int, width: int, frames: int, seed: int = 0) -> np.ndarray:
    """A moving photograph-like texture: luminance detail at three scales, smooth colour (4:2:0
    chroma keeps it), panning 3 px right and 2 down per frame."""
    rng = np.random.default_rng(seed)
    big_h, big_w = height + 2 * frames, width + 3 * frames
    sigma = height / 90

    def blurred(shape, s):
        return cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), s)

    lum = sum(blurred((big_h, big_w), s) * s for s in (sigma, 2 * sigma, 6 * sigma))
    lum = (lum - lum.mean()) / lum.std() * 45
    colour = blurred((big_h, big_w, 3), 8 * sigma)
    big = np.clip(128 + lum[..., None] + colour / colour.std() * 20, 0, 255).astype(np.uint8)
    return np.stack([big[2 * i : 2 * i + height, 3 * i : 3 * i + width] for i in range(frames)])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder with one shard: two original videos (ingest), a clip of each cut at
    64 × 112 by the clips stage (9 frames at stride 2 from frame 3), and their captions."""
    root = tmp_path_factory.mktemp("results")
    videos, clips, captions = [], [], []
    for k, (name, (height, width)) in enumerate(SOURCES.items()):
        src = root / "sources" / f"{name}.mp4"
        src.parent.mkdir(parents=True, exist_ok=True)
        write_frames(src, texture(height, width, 24, seed=k), fps=16, crf=8)
        videos.append({"video_id": name, "path": str(src), "width": width, "height": height})
        clip = root / "media" / f"clip-{name}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        cut_clip(src, clip, 3, 2, CLIP_CFG, 16.0)
        clips.append(
            {
                "clip_id": f"clip-{name}",
                "video_id": name,
                "start_frame": 3,
                "end_frame": 3 + 17,
                "frames": T,
                "stride": 2,
                "height": H,
                "width": W,
                "path": str(clip),
            }
        )
        captions.append({"clip_id": f"clip-{name}", "caption": f"a {name} texture pans"})
    for table, rows in (("ingest", videos), ("clips", clips), ("captions", captions)):
        (root / table).mkdir()
        pd.DataFrame(rows).to_parquet(root / table / "00000.parquet")
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("bases"), ("cogvideox_2b",))["cogvideox_2b"]


def train_cfg(base, **overrides) -> dict:
    """The super-resolver's train section with the schema's defaults, at twin size. Until the
    schema has an experts.super_resolver section, the shared keys' defaults are the remover's
    and the super-resolver's own keys (degradation, crop) are filled in here."""
    schema = yaml.safe_load(SCHEMA.read_text())
    name = "super_resolver"
    if name not in schema["properties"]["experts"]["properties"]:
        name = "remover"
    small = {"init": str(base), "frames": T, "height": OUT[0], "width": OUT[1]}
    config = {"experts": {name: {"train": small}}}
    validate(config, str(SCHEMA))
    cfg = config["experts"][name]["train"]
    cfg.setdefault("degradation", dict(DEFAULTS))
    cfg.setdefault("crop", None)
    return {**cfg, **overrides}


@pytest.fixture(scope="module")
def pipe(base):
    pipe = build_expert("super_resolver", {"init": str(base), "revision": "main"})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def low_res(results):
    """The wide clip at half size: the pipeline's 9 × 32 × 56 input."""
    frames = read_frames(results / "media" / "clip-wide.mp4")
    return np.stack([cv2.resize(f, LOW[::-1], interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture(scope="module")
def untiled(pipe, low_res):
    """The pipeline's output with one forward per step (seed 3)."""
    return lift(pipe, low_res).frames


# -- the re-cut -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_recut_is_the_clip_s_region_at_another_size(results, name):
    row = pd.read_parquet(results / "clips" / "00000.parquet").set_index("video_id").loc[name]
    src = results / "sources" / f"{name}.mp4"
    clip = read_frames(row["path"])
    # At the clip's own size: the clip, but for its H.264 round trip.
    same = recut(src, row, H, W)
    assert same.shape == clip.shape
    assert psnr(same, clip) > 35
    # At 2 ×, averaged back down: the same pixels (measured 35.5 dB wide, 41.3 dB tall; the
    # cover-and-crop rule re-run at 2 × instead: 20.4 and 31.1).
    high = recut(src, row, *HIGH)
    assert high.shape == (T, *HIGH, 3) and high.dtype == np.uint8
    down = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in high])
    aligned = psnr(down, clip)
    assert aligned > 33, aligned
    # One clip pixel off (the cover-and-crop rule re-run at 2 ×, as in recut.py's example)
    # is far worse: the alignment is what the score measures.
    shifted = np.roll(down, 1, axis=2 if name == "wide" else 1)[:, 2:-2, 2:-2]
    assert psnr(shifted, clip[:, 2:-2, 2:-2]) < aligned - 8
    # Fewer frames: the first ones.
    assert np.array_equal(recut(src, row, *HIGH, frames=3), high[:3])


def test_cover_crop_rounds_as_ffmpeg_does():
    # 1920 × 1080 at 336 × 592: scaled 597 wide, the crop's 2.5 rounded to 2 (even).
    assert cover_crop(1080, 1920, 336, 592) == (336, 597, 0, 2)
    assert cover_crop(200, 360, H, W) == (64, 115, 0, 2)
    assert cover_crop(362, 200, H, W) == (203, 112, 70, 0)


# -- the degradation ------------------------------------------------------------------------------


def test_the_degradation_is_seeded_and_loses_detail(results):
    frames = recut(results / "sources" / "wide.mp4", _row(results, "wide"), *HIGH)

    def run(seed, **params):
        return degrade(frames, np.random.default_rng(seed), params or None)

    a = run(0)
    assert a.shape == frames.shape and a.dtype == np.uint8
    assert np.array_equal(a, run(0))  # the same generator state, the same frames
    assert not np.array_equal(a, run(1))

    # The fine detail goes: the frames' Laplacians (their finest band) barely correlate any more
    # (measured 0.14 to 0.53 over seeds 0 to 5; the noise adds its own).
    def fine(x):
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in x]
        return np.stack([cv2.Laplacian(f, cv2.CV_32F) for f in grey]).ravel()

    for seed in range(6):
        assert np.corrcoef(fine(frames), fine(run(seed)))[0, 1] < 0.6, seed
    # A clean 4 × downscale, resized back: close to the frames averaged down and up again.
    clean = run(0, scale=[4, 4], interpolations=["area"], blur_sigma=[0.01, 0.01],
                noise_sigma=[0, 0], jpeg_quality=[100, 100])  # fmt: skip
    small = [
        cv2.resize(f, (HIGH[1] // 4, HIGH[0] // 4), interpolation=cv2.INTER_AREA) for f in frames
    ]
    ref = np.stack([cv2.resize(f, HIGH[::-1], interpolation=cv2.INTER_CUBIC) for f in small])
    assert psnr(clean, ref) > 40
    # Parameters drawn in range, once per clip; a typo is an error.
    d = draw_degradation(np.random.default_rng(5))
    assert 2 <= d["scale"] <= 4 and d["interpolation"] in DEFAULTS["interpolations"]
    with pytest.raises(ValueError, match="unknown degradation parameters"):
        degradation_params({"scales": [2, 3]})
    # Resized to another size when asked (the pipeline's input size).
    assert degrade(frames, np.random.default_rng(0), size=(H, W)).shape == (T, H, W, 3)


def _row(results, name):
    return pd.read_parquet(results / "clips" / "00000.parquet").set_index("video_id").loc[name]


# -- the pipeline ---------------------------------------------------------------------------------


def lift(pipe, video, seed=3, **kw):
    kw.setdefault("num_inference_steps", 2)
    return pipe(video=video, prompt="a texture pans", height=OUT[0], width=OUT[1],
                generator=cpu_generator(seed), **kw)  # fmt: skip


def test_the_pipeline_lifts_the_clip_to_the_output_size_and_is_seeded(
    pipe, low_res, untiled, tmp_path
):
    assert pipe.transformer.config.in_channels == 32  # x_t and the low-resolution latents
    assert untiled.shape == (T, *OUT, 3) and untiled.dtype == np.uint8
    out = lift(pipe, low_res)
    assert np.array_equal(out.frames, untiled) and out.generated is out.frames
    assert not np.array_equal(lift(pipe, low_res, seed=4).frames, untiled)
    # A diffusers pipeline folder, loaded back as the super-resolver, with guidance too.
    pipe.save_pretrained(tmp_path)
    back = PIPELINES["super_resolver"].from_pretrained(tmp_path)
    back.set_progress_bar_config(disable=True)
    assert type(back) is SuperResolverPipeline
    guided = lift(back, low_res, guidance_scale=3.0, negative_prompt="blurry")
    assert guided.frames.shape == (T, *OUT, 3)
    with pytest.raises(ValueError, match="multiples of 16"):
        lift(pipe, low_res, tile=(72, 112))


def test_one_tile_covering_the_frame_is_the_untiled_result(pipe, low_res, untiled):
    assert len(pipe.tiles(*OUT, OUT, 32)) == 1
    assert np.array_equal(lift(pipe, low_res, tile=OUT).frames, untiled)
    # A tile larger than the frame (the default working size) is clamped to it: the same.
    assert len(pipe.tiles(*OUT, (336, 592), 64)) == 1
    assert np.array_equal(lift(pipe, low_res, tile=(336, 592)).frames, untiled)


def test_two_by_two_tiles_make_the_output_size_deterministically(pipe, low_res, untiled):
    # 64 × 112 is 8 × 14 latents; tiles of 48 × 80 pixels are 6 × 10.
    tiles = pipe.tiles(*OUT, (48, 80), 16)
    assert len(tiles) == 4 and tiles.size == (6, 10)
    assert [w[0].start for w in tiles.windows[::2]] == [0, 2]  # rows overlap by 4 latents
    assert [w[1].start for w in tiles.windows[:2]] == [0, 4]  # columns by 6
    out = lift(pipe, low_res, tile=(48, 80), tile_overlap=16)
    assert out.frames.shape == (T, *OUT, 3)
    assert np.array_equal(out.frames, lift(pipe, low_res, tile=(48, 80), tile_overlap=16).frames)
    assert not np.array_equal(out.frames, untiled)  # it did tile


@pytest.mark.parametrize(
    ("grid", "tile", "overlap", "count"),
    [((16, 28), (10, 18), 4, 4), ((84, 148), (42, 74), 8, 9), ((16, 28), (8, 14), 0, 4)],
)
def test_the_blend_is_seamless_where_the_tiles_agree(grid, tile, overlap, count):
    # A prediction that depends on each latent alone (as a model's would where neighbouring
    # tiles agree): blended tile by tile it must equal the whole frame's, overlaps included.
    tiles = LatentTiles.over(grid, tile, overlap)
    assert len(tiles) == count
    x = torch.randn(2, 3, 32, *grid, generator=torch.Generator().manual_seed(0))

    def pointwise(x, control):
        return (
            torch.tanh(x[:, :, :16] * 1.7)
            + 0.3 * x[:, :, 16:]
            + (control if control is not None else 0)
        )

    control = torch.randn(2, 3, 16, *grid, generator=torch.Generator().manual_seed(1))
    blended = tiles.blend(pointwise, x, control)
    assert torch.allclose(blended, pointwise(x, control), atol=1e-6)


def test_tiles_are_spread_evenly_with_at_least_the_overlap():
    # The default at 672 × 1184 (latents 84 × 148), tile 336 × 592 (42 × 74), overlap 64 px.
    assert spread(84, 42, 8) == [0, 21, 42] and spread(148, 74, 8) == [0, 37, 74]
    assert spread(84, 42, 0) == [0, 42]  # touching: a seam
    assert spread(40, 42, 8) == [0]
    for size, tile, overlap in [(100, 30, 7), (97, 16, 3), (64, 40, 39)]:
        starts = spread(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] == size - tile
        assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


# -- training -------------------------------------------------------------------------------------


def view(results, base, **overrides) -> ExpertView:
    cfg = train_cfg(base, **overrides)
    return ExpertView(
        "super_resolver", AnnotatedClips(patterns_for("super_resolver", results), 1, cfg), cfg
    )


def test_a_sample_is_the_recut_target_its_degradation_and_the_caption(results, base, pipe):
    v = view(results, base, prompt_dropout=0.0)
    assert v.clip_ids == ["clip-tall", "clip-wide"]
    rng = np.random.default_rng(0)
    s = v.sample(rng)
    assert s.kind == "degraded" and s.prompt in ("a wide texture pans", "a tall texture pans")
    name = s.prompt.split()[1]
    assert np.array_equal(
        s.frames, recut(results / "sources" / f"{name}.mp4", _row(results, name), *OUT)
    )
    assert s.low_res.shape == s.frames.shape and not np.array_equal(s.low_res, s.frames)
    again = v.sample(np.random.default_rng(0))
    assert np.array_equal(again.low_res, s.low_res)  # seeded: a resumed step redraws it
    # A crop: the same window of target and input.
    c = view(results, base, crop=[32, 48]).sample(np.random.default_rng(1))
    assert c.frames.shape == c.low_res.shape == (T, 32, 48, 3)
    inputs = conditioning(pipe, "super_resolver", [s, again])
    assert inputs["latents"].shape == inputs["condition"].shape == (2, 3, 16, 8, 14)


def test_the_loss_falls_when_overfitting_one_batch(results, base, tmp_path, monkeypatch):
    cfg = train_cfg(base, steps=8, fixed_batch=True, learning_rate=3e-3, checkpoint_every=100)
    patterns = patterns_for("super_resolver", results)
    sampled = []
    real_sample = ExpertView.sample

    def counted(view, rng):
        sampled.append(1)
        return real_sample(view, rng)

    monkeypatch.setattr(ExpertView, "sample", counted)
    out = train_expert("super_resolver", cfg, patterns, 1, tmp_path / "f", tmp_path / "w")
    assert len(sampled) == 1  # the one batch (of one sample) is decoded once for all 8 steps
    rows = (tmp_path / "w" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert len(losses) == 8 and np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    # The result is a super-resolver whose new (zero-initialised) channels have learnt.
    trained = SuperResolverPipeline.from_pretrained(out)
    weight = trained.transformer.state_dict()["patch_embed.proj.weight"]
    assert weight.shape[1] == 32 and weight[:, 16:].any()
    assert json.loads((out / "training.json").read_text())["expert"] == "super_resolver"
    fresh = build_expert("super_resolver", cfg)
    assert not fresh.transformer.state_dict()["patch_embed.proj.weight"][:, 16:].any()
    assert trainable_parameters(fresh, "super_resolver", cfg["parts"])


def test_a_run_stopped_after_a_checkpoint_resumes_to_the_same_weights(
    results, base, tmp_path, monkeypatch
):
    cfg = train_cfg(base, steps=4, checkpoint_every=2, warmup_steps=3, learning_rate=1e-3)
    patterns = patterns_for("super_resolver", results)
    train_expert("super_resolver", cfg, patterns, 1, tmp_path / "f1", tmp_path / "w1")

    # The same run, stopped dead after writing its step-2 checkpoint (as a kill would leave it).
    real = loop._checkpoint

    def stop_after(accelerator, work, step, keep):
        real(accelerator, work, step, keep)
        if step == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(loop, "_checkpoint", stop_after)
    with pytest.raises(KeyboardInterrupt):
        train_expert("super_resolver", cfg, patterns, 1, tmp_path / "f2", tmp_path / "w2")
    assert [p.name for p in checkpoints(tmp_path / "w2")] == ["checkpoint-000002"]
    assert not (tmp_path / "f2").exists()
    monkeypatch.setattr(loop, "_checkpoint", real)
    train_expert("super_resolver", cfg, patterns, 1, tmp_path / "f2", tmp_path / "w2")

    a = SuperResolverPipeline.from_pretrained(tmp_path / "f1").transformer.state_dict()
    b = SuperResolverPipeline.from_pretrained(tmp_path / "f2").transformer.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    loss = [(tmp_path / f"w{i}" / "loss.csv").read_text() for i in (1, 2)]
    assert loss[0] == loss[1]
    shutil.rmtree(tmp_path / "w1")
