"""Stage 2, per shard: cut fixed-length clips that never span a shot cut.

A clip is ``frames`` frames taken every ``stride`` source frames (the paper: 33 frames at stride 2
from 16 fps sources, an 8 fps clip), resized to cover ``height``×``width`` and centre-cropped, so
the aspect ratio is kept. The stride follows from each video's own frame rate and ``target_fps``
(see `clip_strides`); each clip records the stride it was taken at and its frame rate. Shot cuts
are found with PySceneDetect; clip windows are spread evenly over the longest shots, ``margin``
frames away from each cut (a video's first and last frame are no cut). Each clip row carries its
video's attribution (``VIDEO_FIELDS``), which the pair jobs copy into every pair row.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ffmpeg
import pandas as pd
from scenedetect import ContentDetector, detect

from senorita.atomic import atomic_path
from senorita.attribution import VIDEO_FIELDS, attribution
from senorita.ids import stable_hash
from senorita.ingest import clip_span, clip_strides
from senorita.motion import motion
from senorita.provenance import stage_provenance
from senorita.shards import Outcome, Reject, run_shard
from senorita.video import FFMPEG, X264_THREADS, VideoError, read_frames, sha256_file

log = logging.getLogger(__name__)

CLIP_COLUMNS = [
    "clip_id",
    "video_id",
    "shard",
    "start_frame",
    "end_frame",
    "start_s",
    "frames",
    "stride",
    "fps",
    "height",
    "width",
    "path",
    "sha256",
    "motion",
    "static",
    *VIDEO_FIELDS,
]


def detect_shots(path: Path, n_frames: int, cfg: dict[str, Any]) -> list[tuple[int, int]]:
    """Shots as [start, end) source frame ranges; the whole video when there is no cut."""
    scenes = detect(
        str(path),
        ContentDetector(threshold=cfg["scene_threshold"], min_scene_len=cfg["min_shot_frames"]),
        start_in_scene=True,
    )
    shots = [(s.frame_num, e.frame_num) for s, e in scenes]
    return shots or [(0, n_frames)]


def choose_windows(
    shots: list[tuple[int, int]], span: int, per_video: int, margin: int
) -> list[int]:
    """Start frames of up to ``per_video`` non-overlapping windows of ``span`` frames.

    Windows keep ``margin`` frames away from each cut, but not from the video's first and last
    frame: a single-shot video of exactly ``span`` frames gives one window. Windows go to the
    longest shots first (one each, round robin) and are spread evenly within a shot, so clips of
    one video are as far apart (and as different) as they can be.
    """
    first, last = min(s for s, _ in shots), max(e for _, e in shots)
    inner = [(s + (margin if s > first else 0), e - (margin if e < last else 0)) for s, e in shots]
    usable = [(s, e) for s, e in inner if e - s >= span]
    usable.sort(key=lambda se: se[1] - se[0], reverse=True)
    capacity = [(e - s) // span for s, e in usable]
    counts = [0] * len(usable)
    remaining = per_video
    while remaining and any(c < cap for c, cap in zip(counts, capacity, strict=True)):
        for i in range(len(usable)):
            if remaining and counts[i] < capacity[i]:
                counts[i] += 1
                remaining -= 1
    starts = []
    for (s, e), k in zip(usable, counts, strict=True):
        gap = (e - s - k * span) / (k + 1)  # equal space before, between and after windows
        starts += [int(s + gap * (j + 1) + span * j) for j in range(k)]
    return sorted(starts)


def cut_clip(
    src: Path, dst: Path, start: int, stride: int, cfg: dict[str, Any], src_fps: float
) -> None:
    """Cut one clip in one ffmpeg run: select frames, resize to cover, centre-crop, encode."""
    frames, height, width = cfg["frames"], cfg["height"], cfg["width"]
    end = start + (frames - 1) * stride
    out_fps = src_fps / stride
    stream = (
        ffmpeg.input(str(src))
        .filter("select", f"between(n,{start},{end})*not(mod(n-{start},{stride}))")
        .filter("setpts", f"N/({out_fps}*TB)")
        .filter("scale", width, height, force_original_aspect_ratio="increase", flags="bicubic")
        .filter("crop", width, height)
        .filter("setsar", 1)
    )
    with atomic_path(dst) as tmp:
        try:
            out, _ = (
                stream.output(
                    str(tmp),
                    format="mp4",
                    vcodec="libx264",
                    pix_fmt="yuv420p",
                    crf=cfg["crf"],
                    preset=cfg["preset"],
                    threads=X264_THREADS,
                    r=out_fps,
                    movflags="+faststart",
                    an=None,
                    **{"frames:v": frames, "fps_mode": "cfr"},
                )
                .overwrite_output()
                # -progress reports the frames written, which spares a separate ffprobe run.
                .run(cmd=[*FFMPEG, "-progress", "pipe:1"], capture_stdout=True, capture_stderr=True)
            )
        except ffmpeg.Error as err:
            raise VideoError(
                (err.stderr or b"").decode("utf-8", "replace").strip()[-300:]
            ) from None
        written = [line for line in out.decode().splitlines() if line.startswith("frame=")]
        n = int(written[-1].split("=", 1)[1]) if written else 0
        if n != frames:
            raise VideoError(f"clip has {n} frames, expected {frames} (source ends early?)")


def clip_shard(
    videos: Path,
    shard: int,
    cfg: dict[str, Any],
    out: Path,
    rejects_out: Path,
    media: Path,
    duplicates: Path | None = None,
) -> pd.DataFrame:
    """Cut the clips of every accepted video of one shard.

    ``duplicates`` (the dedup stage's table, ``senorita.dedup``): a video it names as a near
    duplicate gives no clips and a reject naming the twin that is kept.
    """
    twins = _twins(duplicates) if duplicates is not None else {}

    def work(video: dict) -> Outcome:
        if (twin := twins.get(video["video_id"])) is not None:
            raise Reject(f"near duplicate: of {twin[0]} (similarity {twin[1]:.3f})")
        return _clip_video(video, shard, cfg, media)

    return run_shard(
        "clips",
        shard,
        pd.read_parquet(videos),
        work,
        out=out,
        rejects_out=rejects_out,
        columns=CLIP_COLUMNS,
        provenance=stage_provenance("clips", shard=shard, clips=cfg),
        key=lambda video: video["video_id"],
        files=lambda row: [row["path"]],
        media=media,
        unit="videos",
    )


def _twins(duplicates: Path) -> dict[str, tuple[str, float]]:
    """video_id -> (the kept twin's video_id, similarity) for each near duplicate."""
    table = pd.read_parquet(duplicates, columns=["video_id", "duplicate_of", "similarity"])
    table = table[table["duplicate_of"].notna()]
    return {
        v: (str(twin), float(sim))
        for v, twin, sim in zip(
            table["video_id"], table["duplicate_of"], table["similarity"], strict=True
        )
    }


def _clip_video(video: dict, shard: int, cfg: dict[str, Any], media: Path) -> Outcome:
    """The clips of one video, and why any of its windows could not be cut."""
    path = Path(video["path"])
    fps = float(video["fps"])
    try:
        shots = detect_shots(path, int(video["frames"]), cfg)
    except Exception as err:  # a decoder failure in one video must not stop the shard
        raise Reject(f"shot detection failed: {err}") from err
    # The preferred stride first; a smaller one only when no shot is long enough for it.
    for stride in clip_strides(fps, cfg):
        span = clip_span(cfg["frames"], stride)
        starts = choose_windows(shots, span, cfg["per_video"], cfg["shot_margin"])
        if starts:
            break
    if not starts:
        longest = max(e - s for s, e in shots)
        cuts = len(shots) - 1
        raise Reject(
            f"no shot long enough: longest {longest} frames of {len(shots)} shots"
            f" at {fps:g} fps; one clip needs {span} ({cfg['frames']} at stride {stride})"
            + (f" plus {cfg['shot_margin']} at each of {cuts} cuts" if cuts else "")
        )
    credits = attribution(video)
    done = Outcome()
    for start in starts:
        # The video id is part of the clip id: the same bytes can come under two ids (re-uploads),
        # and a clip id must name one clip of one video everywhere downstream.
        clip_id = stable_hash(
            "clip",
            video["video_id"],
            video["sha256"],
            start,
            cfg["frames"],
            stride,
            cfg["height"],
            cfg["width"],
        )
        dst = media / f"{clip_id}.mp4"
        try:
            cut_clip(path, dst, start, stride, cfg, fps)
        except VideoError as err:
            done.rejects.append(f"clip failed: at frame {start}: {err}")
            continue
        done.rows.append(
            {
                "clip_id": clip_id,
                "video_id": video["video_id"],
                "shard": shard,
                "start_frame": start,
                "end_frame": start + span,
                "start_s": round(start / fps, 4),
                "frames": cfg["frames"],
                "stride": stride,
                "fps": fps / stride,
                "height": cfg["height"],
                "width": cfg["width"],
                "path": str(dst),
                "sha256": sha256_file(dst),
                "motion": (moves := motion(read_frames(dst))),
                "static": moves < cfg["static_motion"],
                **credits,
            }
        )
    return done
