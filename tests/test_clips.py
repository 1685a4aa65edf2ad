"""Clips from footage shaped like real stock clips: short, single-shot, 8 to 30 fps.

Each video's stride follows from its own frame rate (``clips.target_fps``), shot margins apply at
cuts only, and ingest keeps a video whenever one clip fits at its frame rate.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from senorita.attribution import VIDEO_FIELDS
from senorita.attribution import plain as _plain
from senorita.card import clip_yield
from senorita.catalogue import build_catalogue
from senorita.clips import choose_windows, clip_shard
from senorita.ingest import REJECT_COLUMNS, check_video, clip_strides, ingest_shard
from senorita.motion import motion
from senorita.progress import Progress
from senorita.video import probe, read_frames, write_frames

WIDTH, HEIGHT = 432, 240  # 16:9, short side at ingest's default minimum
BAR = 8  # a white bar that moves across the frame: its position tells which source frame it is


def _schema_defaults(section: str) -> dict:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"][section]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


INGEST = _schema_defaults("ingest")
# Half the source size keeps the aspect ratio, so a clip column maps to two source columns.
CLIPS = {**_schema_defaults("clips"), "height": HEIGHT // 2, "width": WIDTH // 2}


def bar_x(i: int, n: int) -> int:
    return round(4 + i * (WIDTH - 2 * BAR) / max(1, n - 1))


def make_video(path: Path, fps: float, n: int, cut_at: int | None = None, seed: int = 0) -> None:
    """``n`` frames of a dark still texture crossed by a moving bar; a hard cut to a bright,
    differently tinted texture at ``cut_at``."""
    rng = np.random.default_rng(seed)
    shots = []
    for lo, hi, tint in ((20, 70, (1.0, 1.0, 1.0)), (120, 200, (0.3, 0.6, 1.0))):
        noise = rng.uniform(lo, hi, (HEIGHT // 20, WIDTH // 20, 3)).astype(np.float32)
        img = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC) * tint
        shots.append(img.clip(0, 255).astype(np.uint8))
    frames = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(n):
        frames[i] = shots[int(cut_at is not None and i >= cut_at)]
        frames[i, :, bar_x(i, n) : bar_x(i, n) + BAR] = 255
    write_frames(path, frames, fps, preset="ultrafast")


# name: (fps, frames, cut frame, expected stride)
VIDEOS = {
    "single_16fps_66": (16, 66, None, 2),  # the paper's case: 4 s at 16 fps, stride 2
    "single_8fps_33": (8, 33, None, 1),  # exactly one clip's worth at stride 1
    "single_30fps_140": (30, 140, None, 4),  # 4.7 s: long enough for stride 4 (7.5 fps)
    "single_30fps_120": (30, 120, None, 3),  # 4 s: too short for stride 4, so stride 3 (10 fps)
    "cut_near_end_16fps": (16, 80, 70, 2),  # the only cut 10 frames before the end
}


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("footage")
    for i, (name, (fps, n, cut, _)) in enumerate(VIDEOS.items()):
        make_video(folder / f"{name}.mp4", fps, n, cut, seed=i)
    make_video(folder / "too_short_8fps_30.mp4", 8, 30, seed=9)
    return folder


@pytest.fixture(scope="module")
def clipped(footage, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The footage through catalogue, ingest and clips with the default settings."""
    work = tmp_path_factory.mktemp("run")
    source = {"kind": "local", "local": {"path": str(footage), "patterns": ["*.mp4"]}}
    build_catalogue(source, 1, work / "catalogue.parquet")
    videos, ingest_rejects = ingest_shard(
        work / "catalogue.parquet",
        0,
        source,
        INGEST,
        CLIPS,
        work / "videos.parquet",
        work / "ingest.rejects.parquet",
    )
    clips = clip_shard(
        work / "videos.parquet",
        0,
        CLIPS,
        work / "clips.parquet",
        work / "clips.rejects.parquet",
        work / "media",
    )
    name = {v: Path(p).stem for v, p in zip(videos["video_id"], videos["path"], strict=True)}
    return {
        "work": work,
        "videos": videos,
        "ingest_rejects": ingest_rejects,
        "clips": clips.assign(name=clips["video_id"].map(name)).set_index("name"),
        "clip_rejects": pd.read_parquet(work / "clips.rejects.parquet"),
    }


@pytest.mark.parametrize(
    ("fps", "strides"),
    [
        (16, [2, 1]),
        (8, [1]),
        (30, [4, 3, 2]),
        (29.97, [4, 3, 2]),
        (24, [3, 2]),
        (25, [3, 2]),
        (20, [3, 2]),  # 6.7 fps is nearer 8 than 10 fps
        (60, [8, 7, 6, 5, 4]),
        (5, [1]),  # slower than the target: every frame
    ],
)
def test_stride_follows_the_video_frame_rate(fps, strides):
    assert clip_strides(fps, CLIPS) == strides
    assert clip_strides(fps, {**CLIPS, "max_fps": CLIPS["target_fps"]}) == strides[:1]
    assert clip_strides(fps, {**CLIPS, "stride": 2}) == [2]


def test_margins_apply_at_cuts_not_at_the_video_ends():
    assert choose_windows([(0, 65)], 65, 1, 3) == [0]
    assert choose_windows([(0, 64)], 65, 1, 3) == []
    # A cut at 70 of 80: the first shot keeps 3 frames from the cut, none from frame 0.
    assert choose_windows([(0, 70), (70, 80)], 65, 1, 3) == [1]
    assert choose_windows([(0, 70), (70, 80)], 68, 1, 3) == []
    assert choose_windows([(0, 12), (12, 80)], 65, 1, 3) == [15]


def test_ingest_keeps_every_video_one_clip_fits_and_says_why_it_drops_one(clipped):
    names = {Path(p).stem for p in clipped["videos"]["path"]}
    assert names == set(VIDEOS)
    (reason,) = clipped["ingest_rejects"]["reason"]
    assert reason.startswith("too short:") and "30 frames at 8 fps" in reason
    assert "one clip needs 33 frames: 33 at stride 1" in reason


def test_every_video_gives_a_clip_at_its_own_stride(clipped):
    clips, videos = clipped["clips"], clipped["videos"].set_index("video_id")
    assert set(clips.index) == set(VIDEOS)
    assert clipped["clip_rejects"].empty
    for name, (fps, n, cut, stride) in VIDEOS.items():
        clip = clips.loc[name]
        assert clip["stride"] == stride, name
        assert clip["fps"] == pytest.approx(fps / stride), name
        assert clip["end_frame"] - clip["start_frame"] == (CLIPS["frames"] - 1) * stride + 1
        assert clip["start_frame"] >= 0 and clip["end_frame"] <= n, name
        if cut is not None:
            assert clip["end_frame"] <= cut - CLIPS["shot_margin"], name
        info = probe(clip["path"])
        assert (info.frames, info.height, info.width) == (33, CLIPS["height"], CLIPS["width"])
        assert info.fps == pytest.approx(fps / stride, rel=1e-3), name
        # Clip frame k is source frame start + k * stride: the bar sits where that frame had it.
        frames = read_frames(clip["path"]).astype(np.float32)
        for k in (0, 16, 32):
            source_x = 2 * int(np.argmax(frames[k, :, :, :].mean(axis=(0, 2)))) + 1
            expected = bar_x(clip["start_frame"] + k * stride, n) + BAR / 2
            assert abs(source_x - expected) <= 3, (name, k, source_x, expected)
        assert videos.loc[clip["video_id"], "fps"] == pytest.approx(fps)


def test_fixed_stride_and_a_tight_max_fps_reject_short_videos_with_a_reason(footage, tmp_path):
    fixed = {**CLIPS, "stride": 2}
    facts, reason = check_video(footage / "single_8fps_33.mp4", INGEST, fixed)
    assert facts["frames"] == 33
    assert reason.startswith("too short") and "one clip needs 65 frames: 33 at stride 2" in reason
    tight = {**CLIPS, "max_fps": CLIPS["target_fps"]}
    _, reason = check_video(footage / "single_30fps_120.mp4", INGEST, tight)
    assert reason is not None and "one clip needs 129 frames: 33 at stride 4" in reason
    # The clip stage says the same when handed such a video.
    facts, _ = check_video(footage / "single_30fps_120.mp4", INGEST, CLIPS)
    table = tmp_path / "videos.parquet"
    row = {"video_id": "v", "path": str(footage / "single_30fps_120.mp4"), "sha256": "x", **facts}
    pd.DataFrame([row]).to_parquet(table)
    out = tmp_path / "clips.parquet"
    clips = clip_shard(table, 0, tight, out, tmp_path / "rejects.parquet", tmp_path / "media")
    assert clips.empty
    (reason,) = pd.read_parquet(tmp_path / "rejects.parquet")["reason"]
    assert reason.startswith("no shot long enough: longest 120 frames of 1 shots at 30 fps")


def test_rerun_changes_nothing(clipped):
    work = clipped["work"]
    before = pd.read_parquet(work / "clips.parquet")
    again = clip_shard(
        work / "videos.parquet",
        0,
        CLIPS,
        work / "clips.parquet",
        work / "clips.rejects.parquet",
        work / "media",
    )
    pd.testing.assert_frame_equal(before, again)


ATTRIBUTION = {
    # a Pexels shard: an int id for every video, a missing author page
    "pexels": {
        "origin": "pexels",
        "licence": "Pexels License",
        "author": ["Ann", "Bo", None],
        "author_url": ["https://p/a", None, "https://p/c"],
        "page_url": "https://p/v",
        "source_name": "pexels",
        "pexels_id": [101, 102, 103],
        "rendition": ["sd 640x360 video/mp4 (file 1)", "hd", "sd"],
    },
    # a local folder: no Pexels columns at all
    "local": {"origin": "local", "licence": None, "author": None, "source_name": "x.mp4"},
    # ids missing for some videos: a float column with NaN
    "mixed": {"origin": "mixed", "licence": "CC0-1.0", "pexels_id": [7.0, float("nan"), 9.0]},
}


@pytest.mark.parametrize("case", sorted(ATTRIBUTION))
def test_clip_rows_carry_their_videos_attribution_as_the_pairs_read_it(footage, tmp_path, case):
    """Each clip row carries its video's attribution; a pair job reading it from the clip row gets
    the very values (and types) it got from the ingest table, so the manifests do not change."""
    facts, _ = check_video(footage / "single_8fps_33.mp4", INGEST, CLIPS)
    path = str(footage / "single_8fps_33.mp4")
    videos = pd.DataFrame(
        [{"video_id": f"v{i}", "path": path, "sha256": "x", **facts} for i in range(3)]
    )
    videos = videos.assign(**ATTRIBUTION[case])
    videos.to_parquet(tmp_path / "videos.parquet")
    clip_shard(
        tmp_path / "videos.parquet", 0, CLIPS, tmp_path / "clips.parquet",
        tmp_path / "rejects.parquet", tmp_path / "media",
    )  # fmt: skip
    clips = pd.read_parquet(tmp_path / "clips.parquet")
    assert len(clips) == 3 and list(clips.columns[-len(VIDEO_FIELDS) :]) == VIDEO_FIELDS
    # As the pair job read them before (from the ingest table) and reads them now (the clip row).
    table = pd.read_parquet(tmp_path / "videos.parquet").set_index("video_id")
    before = [
        {f: _plain(table.loc[c["video_id"]].get(f)) for f in VIDEO_FIELDS}
        for c in clips.to_dict("records")
    ]
    after = [{f: _plain(c.get(f)) for f in VIDEO_FIELDS} for c in clips.to_dict("records")]
    assert after == before
    assert [[type(v) for v in row.values()] for row in after] == [
        [type(v) for v in row.values()] for row in before
    ]
    a, b = pd.DataFrame(before), pd.DataFrame(after)
    pd.testing.assert_frame_equal(a, b)
    if case == "pexels":
        assert [r["pexels_id"] for r in after] == [101, 102, 103]
        assert type(after[0]["pexels_id"]) is int and after[1]["author_url"] is None
    if case == "mixed":
        assert [r["pexels_id"] for r in after] == [7.0, None, 9.0]


def test_card_reports_the_clip_yield(clipped):
    work = clipped["work"]
    rejects = pd.concat([clipped["ingest_rejects"], clipped["clip_rejects"]], ignore_index=True)
    warning, lines = clip_yield(
        len(VIDEOS) + 1, [work / "videos.parquet"], [work / "clips.parquet"], rejects
    )
    assert warning is None
    text = "\n".join(lines)
    assert f"Videos accepted at ingest: {len(VIDEOS)} of {len(VIDEOS) + 1}" in text
    assert f"Clips: {len(VIDEOS)} from {len(VIDEOS)} videos, 1.00 per accepted video" in text
    assert "2 at stride 2 (8 fps)" in text and "1 at stride 3 (10 fps)" in text
    assert "Rejects at ingest: 1 (too short: 1)" in text
    assert "Rejects at clips: 0 (none)" in text
    # Most sources giving nothing is flagged at the top.
    none = pd.DataFrame(columns=REJECT_COLUMNS)
    empty = work / "no-clips.parquet"
    pd.read_parquet(work / "clips.parquet").head(0).to_parquet(empty)
    warning, lines = clip_yield(6, [work / "videos.parquet"], [empty], none)
    assert warning is not None and "only 0 of 6 source videos gave a clip" in warning
    assert f"({len(VIDEOS)} with 0 clips)" in "\n".join(lines)


def test_ingest_and_clips_log_progress_lines(footage, tmp_path, monkeypatch, caplog):
    import senorita.ingest
    import senorita.shards

    for module in (senorita.ingest, senorita.shards):
        monkeypatch.setattr(module, "Progress", functools.partial(Progress, every_s=0))
    source = {"kind": "local", "local": {"path": str(footage), "patterns": ["single_*.mp4"]}}
    build_catalogue(source, 1, tmp_path / "catalogue.parquet")
    fast = {**INGEST, "verify_decode": False}
    with caplog.at_level(logging.INFO, logger="senorita.progress"):
        ingest_shard(
            tmp_path / "catalogue.parquet",
            0,
            source,
            fast,
            CLIPS,
            tmp_path / "videos.parquet",
            tmp_path / "ingest.rejects.parquet",
        )
        clip_shard(
            tmp_path / "videos.parquet",
            0,
            CLIPS,
            tmp_path / "clips.parquet",
            tmp_path / "clips.rejects.parquet",
            tmp_path / "media",
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "senorita.progress"]
    for stage in ("ingest", "clips"):
        for k in range(1, 5):
            assert any(line.startswith(f"{stage} 00000: {k}/4 videos, ") for line in lines), (
                stage,
                k,
                lines,
            )
    assert all("/s, elapsed " in line for line in lines)


def test_progress_reaches_the_job_log_file(clipped, tmp_path):
    """The clips rule's command line, stderr to the log file as the rule does it."""
    log = tmp_path / "clips.log"
    videos = tmp_path / "videos.parquet"  # two of the videos: the lines are what is checked
    pd.read_parquet(clipped["work"] / "videos.parquet").head(2).to_parquet(videos)
    with log.open("w") as stderr:
        subprocess.run(
            [
                str(Path(sys.executable).parent / "senorita"),
                "clips",
                "--videos",
                str(videos),
                "--shard",
                "0",
                "--params",
                json.dumps(CLIPS),
                "--media",
                str(tmp_path / "media"),
                "--out",
                str(tmp_path / "clips.parquet"),
                "--rejects",
                str(tmp_path / "rejects.parquet"),
            ],
            stderr=stderr,
            check=True,
        )
    text = log.read_text()
    assert "senorita.progress: clips 00000: 2/2 videos, " in text, text


def panning(n: int, speed: float, still: bool = False, subject: bool = False) -> np.ndarray:
    """``n`` frames of a smooth texture panning ``speed`` px per frame (or standing still), or
    a textured square half the frame high crossing the still texture (``subject``)."""
    rng = np.random.default_rng(4)
    noise = rng.uniform(0, 255, (HEIGHT // 12, 2 * WIDTH // 12, 3)).astype(np.float32)
    wide = cv2.resize(noise, (2 * WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC).astype(np.uint8)
    frames = []
    for i in range(n):
        x = 0 if still or subject else round(i * speed)
        frame = wide[:, x : x + WIDTH].copy()
        if subject:
            s, left = HEIGHT // 2, round(20 + i * speed)
            frame[40 : 40 + s, left : left + s] = wide[:s, -s:] // 2 + 100
        frames.append(frame)
    return np.stack(frames)


def test_motion_tells_still_footage_from_a_pan_and_a_moving_subject(tmp_path):
    for name, frames in {
        "still": panning(17, 0, still=True),
        "pan": panning(17, 3),
        "subject": panning(17, 4, subject=True),
    }.items():
        write_frames(tmp_path / f"{name}.mp4", frames, 8.0, preset="ultrafast")
    measured = {p.stem: motion(read_frames(p)) for p in tmp_path.glob("*.mp4")}
    assert measured["still"] < 0.05  # coding noise only
    assert measured["pan"] == pytest.approx(3, rel=0.25)
    # A seventh of the frame moves at 4 px/frame: not its full speed (the percentile falls on
    # the subject's slower edges), but far from still.
    assert 1 < measured["subject"] < 4.5


def test_clip_rows_flag_static_clips(tmp_path):
    folder = tmp_path / "videos"
    for name, frames in {"still": panning(40, 0, still=True), "pan": panning(40, 2)}.items():
        write_frames(folder / f"{name}.mp4", frames, 8.0, preset="ultrafast")
    source = {"kind": "local", "local": {"path": str(folder), "patterns": ["*.mp4"]}}
    build_catalogue(source, 1, tmp_path / "catalogue.parquet")
    args = (tmp_path / "catalogue.parquet", 0, source, INGEST, CLIPS)
    ingest_shard(*args, tmp_path / "videos.parquet", tmp_path / "ingest.rejects.parquet")
    clips = clip_shard(
        tmp_path / "videos.parquet",
        0,
        CLIPS,
        tmp_path / "clips.parquet",
        tmp_path / "rejects.parquet",
        tmp_path / "media",
    )
    by_name = {Path(p).stem: v for p, v in zip(clips["source_name"], clips.index, strict=True)}
    rows = clips.loc[[by_name["still"], by_name["pan"]]]
    assert rows["static"].tolist() == [True, False]
    assert rows["motion"].iloc[0] < 0.05 < 0.5 < rows["motion"].iloc[1]
