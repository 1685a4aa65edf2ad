"""Near-duplicate source videos (``senorita.dedup``): frame sampling, the similarity, the greedy
decision, the stage's table and cache, and the clips stage's rejects.

The tiny CLIP twin has random weights: on this footage it puts copies at 0.97-0.99 and different
videos at 0.89-0.97 (A with its crop 0.972, A with B 0.967), so it cannot tell a duplicate. The
production path runs with it for shapes, caching and exact copies (identical bytes give identical
signatures whatever the weights); the decisions run with `ColourLayout`, a deterministic embedder
class handed in through the stage's ``load``.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, planned, snakemake
from senorita.atomic import read_provenance
from senorita.clips import clip_shard
from senorita.dedup import (
    DEDUP_COLUMNS,
    cache_folder,
    dedup_videos,
    find_duplicates,
    sample_frames,
    video_similarity,
)
from senorita.ingest import check_video
from senorita.progress import Progress
from senorita.testing.tiny import build_tiny_models
from senorita.video import probe, read_frames, sha256_file, write_frames

W, H = 432, 240  # 16:9, short side at ingest's default minimum


def _schema_defaults(section: str) -> dict:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"][section]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


# The facts ingest records; its full decode (verify_decode) adds nothing to them.
INGEST = {**_schema_defaults("ingest"), "verify_decode": False}
CLIPS = {**_schema_defaults("clips"), "height": 90, "width": 160}
MODELS = {
    "clip": {
        "id": "colour-layout",
        "revision": None,
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 8,
    }
}
# ColourLayout puts these copies at 0.81-0.97 and different footage at 0.08-0.24 (measured).
PARAMS = {"frames": 4, "threshold": 0.7}


def scene(n: int, seed: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """Footage like a stock clip: a large-scale coloured landscape panning 1.5 px a frame, crossed
    by a textured square moving twice as fast."""
    w, h = size
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h // 36 + 1, 2 * w // 36 + 1, 3)).astype(np.float32)
    wide = cv2.resize(noise, (2 * w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255)
    wide = wide.astype(np.uint8)
    frames = []
    for i in range(n):
        frame = wide[:, round(1.5 * i) : round(1.5 * i) + w].copy()
        s, left = h // 3, round(10 + 3 * i)
        frame[h // 6 : h // 6 + s, left : left + s] = wide[:s, -s:] // 2 + 100
        frames.append(frame)
    return np.stack(frames)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    """A and copies of it (re-encoded at another CRF, centre-cropped to 80 % and rescaled;
    trimmed by its first second), and two other videos at other rates and lengths."""
    d = tmp_path_factory.mktemp("footage")
    write_frames(d / "a.mp4", scene(64, 1), 16, preset="ultrafast")
    write_frames(d / "b.mp4", scene(48, 2), 16, preset="ultrafast")
    write_frames(d / "c.mp4", scene(72, 3), 24, preset="ultrafast")
    crop = "crop=iw*0.8:ih*0.8,scale=480:270"
    x264 = ["-c:v", "libx264", "-preset", "ultrafast"]
    ffmpeg("-i", str(d / "a.mp4"), "-vf", crop, *x264, "-crf", "32", str(d / "a_crop.mp4"))
    ffmpeg("-ss", "1", "-i", str(d / "a.mp4"), *x264, "-crf", "23", str(d / "a_trim.mp4"))
    return {p.stem: p for p in d.glob("*.mp4")}


class ColourLayout:
    """A deterministic stand-in for CLIP: the centre square (as CLIP's processor crops it),
    averaged to 4 x 4 RGB cells, less its mean, normalised. Like CLIP it is indifferent to
    coding noise, resizing and small shifts, and tells different pictures apart."""

    def __init__(self):
        self.embedded = 0  # images, to see what a rerun recomputes

    def images(self, frames) -> np.ndarray:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            s = min(h, w)
            square = frame[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]
            cells = cv2.resize(square.astype(np.float32), (4, 4), interpolation=cv2.INTER_AREA)
            v = cells.ravel() - cells.mean()
            out.append(v / max(float(np.linalg.norm(v)), 1e-6))
        self.embedded += len(out)
        return np.stack(out).astype(np.float32)


class Loader:
    """``dedup_videos``' ``load``: counts the loads, hands out one ColourLayout."""

    def __init__(self):
        self.calls, self.embedder = 0, ColourLayout()

    def __call__(self, spec):
        self.calls += 1
        return self.embedder


def ingest_tables(folder: Path, shards: list[list[tuple[str, Path]]]) -> str:
    """Ingest tables, one per shard, of (video_id, file) rows as ingest writes them; their
    ``{shard}`` pattern."""
    for shard, videos in enumerate(shards):
        rows = []
        for vid, path in videos:
            facts, reason = check_video(path, INGEST, CLIPS)
            assert reason is None, reason
            rows.append({"video_id": vid, "path": str(path), **facts, "sha256": sha256_file(path)})
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(folder / f"{shard:05d}.parquet", index=False)
    return str(folder / "{shard}.parquet")


def verdicts(table: pd.DataFrame) -> dict[str, str | None]:
    """video_id -> the twin it duplicates, None when kept."""
    twins = table["duplicate_of"].astype(object).where(table["duplicate_of"].notna(), None)
    return dict(zip(table["video_id"], twins, strict=True))


# --- frames, similarity and the decision --------------------------------------------------------


def test_frames_are_sampled_at_the_midpoints_of_any_video(footage, tmp_path):
    """Frames at the midpoints of four equal parts, whatever the rate, length, size or rotation,
    matched against a full decode; a large video comes scaled to a short side of 256."""
    ffmpeg("-i", str(footage["a"]), "-c", "copy", "-metadata:s:v:0", "rotate=90",
           str(tmp_path / "portrait.mp4"))  # fmt: skip
    write_frames(tmp_path / "large.mp4", scene(30, 4, (640, 360)), 30, preset="ultrafast")
    cases = {
        # file: (expected source frames, shape of a sampled frame)
        footage["a"]: ([8, 24, 40, 56], (240, 432, 3)),  # 4 s at 16 fps
        footage["c"]: ([9, 27, 45, 63], (240, 432, 3)),  # 3 s at 24 fps
        footage["a_trim"]: ([6, 18, 30, 42], (240, 432, 3)),  # 3 s
        tmp_path / "portrait.mp4": ([8, 24, 40, 56], (432, 240, 3)),
    }
    for path, (expected, shape) in cases.items():
        sampled, full = sample_frames(path, 4), read_frames(path).astype(np.float32)
        assert sampled.shape == (4, *shape), path
        nearest = [int(np.argmin(((full - f) ** 2).mean(axis=(1, 2, 3)))) for f in sampled]
        assert all(abs(n - e) <= 1 for n, e in zip(nearest, expected, strict=True)), (path, nearest)
    large = sample_frames(tmp_path / "large.mp4", 3)
    assert large.shape == (3, 256, 455, 3)
    # The ingest table's facts stand in for a probe and give the same frames.
    assert np.array_equal(
        sample_frames(footage["a"], 2, probe(footage["a"])), sample_frames(footage["a"], 2)
    )


def test_similarity_takes_each_frames_best_match_and_the_larger_direction():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(8, 32)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    whole, trimmed = frames[[0, 2, 4, 6]], frames[[4, 5, 6, 7]]
    assert video_similarity(whole, whole) == pytest.approx(1.0)
    assert video_similarity(whole, whole[::-1]) == pytest.approx(1.0)  # times do not matter
    # The trim's frames 4 and 6 are in the whole; 5 and 7 match nothing (random: cosine ~0).
    # Half the frames each way: the larger direction is 0.5 + 0.5 x (best chance match).
    forward = video_similarity(whole, trimmed)
    assert forward == pytest.approx(video_similarity(trimmed, whole))
    contained = frames[[0, 2, 4, 4]]  # every frame of it is in the whole: a trimmed copy
    assert video_similarity(whole, contained) == pytest.approx(1.0)
    assert video_similarity(contained, whole) == pytest.approx(1.0)
    assert 0.4 < forward < 0.8


def reference(sigs: np.ndarray, threshold: float) -> list[int]:
    """The rule, written out: each video names the earliest kept video it is similar to."""
    out: list[int] = []
    for i in range(len(sigs)):
        twins = [
            j for j in range(i) if out[j] == -1 and video_similarity(sigs[i], sigs[j]) >= threshold
        ]
        out.append(twins[0] if twins else -1)
    return out


@pytest.mark.parametrize("block", [1, 3, 7, 1024])
def test_blocked_decisions_match_the_rule_written_out(block):
    """Clusters of noisy copies in shuffled order, a chain (C is like B, B like A, C not like
    A: B is A's duplicate, so C stays), and blocks of every size give the same decisions."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(6, 4, 24))
    sigs = np.concatenate([base + rng.normal(scale=0.35, size=base.shape) for _ in range(4)])
    sigs = sigs[rng.permutation(len(sigs))]
    u, v = np.linalg.qr(rng.normal(size=(24, 2)))[0].T  # orthonormal: 30 degrees apart a step
    chain = np.stack(
        [np.stack([np.cos(t) * u + np.sin(t) * v] * 4) for t in np.radians([0, 30, 60])]
    )
    sigs = np.concatenate([sigs, chain]).astype(np.float32)
    sigs /= np.linalg.norm(sigs, axis=2, keepdims=True)
    threshold = 0.8
    expected = reference(sigs, threshold)
    twin, sim = find_duplicates(sigs, threshold, block=block)
    assert twin.tolist() == expected
    dup = twin >= 0
    assert 12 <= dup.sum() <= 20 and np.isnan(sim[~dup]).all()
    for i in np.flatnonzero(dup):
        assert sim[i] == pytest.approx(video_similarity(sigs[i], sigs[twin[i]]), abs=1e-5)
        assert sim[i] >= threshold
    a, b, c = len(sigs) - 3, len(sigs) - 2, len(sigs) - 1
    assert video_similarity(sigs[b], sigs[a]) >= threshold > video_similarity(sigs[c], sigs[a])
    assert video_similarity(sigs[c], sigs[b]) >= threshold
    assert twin[b] == a and twin[c] == -1
    assert find_duplicates(sigs[:0], threshold)[0].shape == (0,)


# --- the stage ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deduped(footage, tmp_path_factory) -> dict:
    """Shard 0: A, B; shard 1: A's cropped re-encode, C, A trimmed."""
    work = tmp_path_factory.mktemp("dedup")
    shard0 = [("vid_a", footage["a"]), ("vid_b", footage["b"])]
    shard1 = [("vid_crop", footage["a_crop"]), ("vid_c", footage["c"])]
    pattern = ingest_tables(work / "videos", [shard0, [*shard1, ("vid_trim", footage["a_trim"])]])
    loader = Loader()
    out = work / "dedup.parquet"
    table = dedup_videos(pattern, 2, MODELS, PARAMS, out, load=loader)
    return {"work": work, "pattern": pattern, "out": out, "table": table, "loader": loader}


def test_copies_name_the_video_they_copy_and_other_footage_is_kept(deduped):
    table = deduped["table"]
    assert list(table.columns) == DEDUP_COLUMNS
    assert table["video_id"].tolist() == ["vid_a", "vid_b", "vid_crop", "vid_c", "vid_trim"]
    assert table["shard"].tolist() == [0, 0, 1, 1, 1]
    assert verdicts(table) == {
        "vid_a": None,
        "vid_b": None,
        "vid_crop": "vid_a",
        "vid_c": None,
        "vid_trim": "vid_a",
    }
    sim = table.set_index("video_id")["similarity"]
    assert sim[["vid_a", "vid_b", "vid_c"]].isna().all()
    assert 0.75 < sim["vid_crop"] < 1 and 0.9 < sim["vid_trim"] <= 1
    pd.testing.assert_frame_equal(pd.read_parquet(deduped["out"]), table)
    prov = read_provenance(deduped["out"])
    assert prov["stage"] == "dedup"
    assert prov["params"]["threshold"] == 0.7 and prov["params"]["frames"] == 4
    assert deduped["loader"].calls == 1 and deduped["loader"].embedder.embedded == 5 * 4


def test_the_earlier_video_is_kept(footage, tmp_path):
    """Order decides, across shards: the trimmed copy first keeps it, and the original and the
    cropped copy name it; at a threshold above them all, every video is kept."""
    shard0 = [("vid_trim", footage["a_trim"]), ("vid_b", footage["b"])]
    shard1 = [("vid_a", footage["a"]), ("vid_crop", footage["a_crop"])]
    pattern = ingest_tables(tmp_path / "videos", [shard0, shard1])
    table = dedup_videos(pattern, 2, MODELS, PARAMS, tmp_path / "d.parquet", load=Loader())
    assert verdicts(table) == {
        "vid_trim": None,
        "vid_b": None,
        "vid_a": "vid_trim",
        "vid_crop": "vid_trim",
    }
    strict = {**PARAMS, "threshold": 0.999}
    table = dedup_videos(pattern, 2, MODELS, strict, tmp_path / "d.parquet", load=Loader())
    assert table["duplicate_of"].isna().all()


def test_a_rerun_reuses_the_cached_signatures(deduped, tmp_path):
    pattern = deduped["pattern"]
    assert sorted(p.name for p in cache_folder(deduped["out"]).iterdir()) == [
        "00000.npz",
        "00001.npz",
    ]
    out = tmp_path / "dedup.parquet"  # the first run's cache, in a copy this test may change
    cache = cache_folder(out)
    shutil.copytree(cache_folder(deduped["out"]), cache)
    loader = Loader()
    again = dedup_videos(pattern, 2, MODELS, PARAMS, out, load=loader)
    assert loader.calls == 0  # no model loaded
    pd.testing.assert_frame_equal(again, deduped["table"])
    # Another threshold decides again from the same signatures.
    looser = dedup_videos(pattern, 2, MODELS, {**PARAMS, "threshold": -1.0}, out, load=loader)
    assert loader.calls == 0 and looser["duplicate_of"].notna().sum() == 4
    # A job killed before shard 1 was cached redoes shard 1 only.
    (cache / "00001.npz").unlink()
    again = dedup_videos(pattern, 2, MODELS, PARAMS, out, load=loader)
    assert loader.calls == 1 and loader.embedder.embedded == 3 * 4
    pd.testing.assert_frame_equal(again, deduped["table"])
    # Other settings (frames) or another model are not reused.
    loader = Loader()
    dedup_videos(pattern, 2, MODELS, {**PARAMS, "frames": 3}, out, load=loader)
    assert loader.embedder.embedded == 5 * 3
    other = {"clip": {**MODELS["clip"], "id": "another-model"}}
    loader = Loader()
    dedup_videos(pattern, 2, other, PARAMS, out, load=loader)
    assert loader.embedder.embedded == 5 * 4


def test_an_unreadable_video_is_kept_and_logged(footage, tmp_path, caplog):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(footage["a"].read_bytes()[:2000])  # truncated after ingest
    pattern = ingest_tables(
        tmp_path / "videos", [[("vid_a", footage["a"]), ("vid_crop", footage["a_crop"])]]
    )
    table = pd.read_parquet(tmp_path / "videos" / "00000.parquet")
    bad = {**table.iloc[0].to_dict(), "video_id": "vid_broken", "path": str(broken), "sha256": "x"}
    pd.concat([pd.DataFrame([bad]), table]).to_parquet(tmp_path / "videos" / "00000.parquet")
    with caplog.at_level(logging.WARNING, logger="senorita.dedup"):
        out = dedup_videos(pattern, 1, MODELS, PARAMS, tmp_path / "d.parquet", load=Loader())
    assert verdicts(out) == {"vid_broken": None, "vid_a": None, "vid_crop": "vid_a"}
    assert any("vid_broken kept unchecked" in r.getMessage() for r in caplog.records)


def test_progress_lines(deduped, tmp_path, monkeypatch, caplog):
    import senorita.dedup

    monkeypatch.setattr(senorita.dedup, "Progress", functools.partial(Progress, every_s=0))
    with caplog.at_level(logging.INFO, logger="senorita.progress"):
        dedup_videos(deduped["pattern"], 2, MODELS, PARAMS, tmp_path / "d.parquet", load=Loader())
    lines = [r.getMessage() for r in caplog.records if r.name == "senorita.progress"]
    assert any(line.startswith("dedup: 2/5 videos, ") for line in lines), lines
    assert any(line.startswith("dedup: 5/5 videos, ") for line in lines), lines


def test_the_clip_embedder_path_with_the_tiny_twin(footage, tmp_path, monkeypatch):
    """The registry's CLIP (its tiny twin): signatures of 4 x 16, cached; a byte-identical
    upload under another id is a duplicate at similarity 1 whatever the weights."""
    tiny = build_tiny_models(tmp_path / "tiny", families=("clip",))["clip"]
    models = {"clip": {"id": str(tiny), "revision": None, "dtype": "auto", "device": "cpu",
                       "batch_size": 8}}  # fmt: skip
    pattern = ingest_tables(
        tmp_path / "videos",
        [[("vid_a", footage["a"]), ("vid_b", footage["b"])], [("vid_a_again", footage["a"])]],
    )
    out = tmp_path / "dedup.parquet"
    table = dedup_videos(pattern, 2, models, {"frames": 4, "threshold": 0.9999}, out)
    assert verdicts(table)["vid_a_again"] == "vid_a"
    assert table.set_index("video_id")["similarity"]["vid_a_again"] == pytest.approx(1, abs=1e-5)
    with np.load(cache_folder(out) / "00000.npz") as cached:
        assert cached["signatures"].shape == (2, 4, 16) and cached["signatures"].dtype == np.float32
        norms = np.linalg.norm(cached["signatures"], axis=2)
        np.testing.assert_allclose(norms, 1, atol=1e-5)
        assert "@local" in str(cached["settings"])
    import senorita.models.clip

    def no_load(spec):
        raise AssertionError("the rerun loaded the model")

    monkeypatch.setattr(senorita.models.clip.ClipEmbedder, "load", no_load)
    again = dedup_videos(pattern, 2, models, {"frames": 4, "threshold": 0.9999}, out)
    pd.testing.assert_frame_equal(again, table)


# --- the clips stage ---------------------------------------------------------------------------


def test_clips_reject_a_duplicate_naming_its_twin(deduped, tmp_path):
    videos = pd.read_parquet(deduped["pattern"].format(shard="00001"))
    path = tmp_path / "videos.parquet"
    videos.to_parquet(path)
    clips = clip_shard(
        path, 1, CLIPS, tmp_path / "clips.parquet", tmp_path / "rejects.parquet",
        tmp_path / "media", duplicates=deduped["out"],
    )  # fmt: skip
    assert clips["video_id"].tolist() == ["vid_c"]
    rejects = pd.read_parquet(tmp_path / "rejects.parquet").set_index("video_id")
    sim = deduped["table"].set_index("video_id")["similarity"]
    assert sorted(rejects.index) == ["vid_crop", "vid_trim"]
    assert (rejects["stage"] == "clips").all()
    for vid in ("vid_crop", "vid_trim"):
        assert rejects.loc[vid, "reason"] == f"near duplicate: of vid_a (similarity {sim[vid]:.3f})"


def test_one_dedup_job_feeds_every_clips_job_and_off_means_none(tmp_path):
    plan = snakemake(tmp_path, "-n", "-p", "all").stdout
    assert planned(plan)["dedup"] == 1
    assert plan.count("--duplicates results/dedup/duplicates.parquet") == planned(plan)["clips"]
    off = snakemake(tmp_path, "-n", "-p", "all", config={"dedup": {"enabled": False}})
    assert "dedup" not in planned(off.stdout) and "--duplicates" not in off.stdout


def test_the_demo_compares_every_video_it_ingested(demo_run):
    table = pd.read_parquet(demo_run / "results" / "dedup" / "duplicates.parquet")
    videos = pd.concat(
        pd.read_parquet(p)
        for p in sorted((demo_run / "results" / "ingest").glob("0*.parquet"))
        if not p.name.endswith(".rejects.parquet")
    )
    assert sorted(table["video_id"]) == sorted(videos["video_id"])
    # The demo's four generated videos are distinct footage: none is dropped.
    assert table["duplicate_of"].isna().all()
