"""Stage 1, per shard: make each video local, probe it, and accept or reject it with a reason.

A video is rejected (and the run goes on) when it cannot be read, has no video stream, fails a
full decode (truncated or corrupt), or is too short or too small for one clip. "Too short" is
judged at the video's own frame rate: the stride a clip takes follows from it (`clip_strides`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_table
from senorita.ids import shard_name
from senorita.progress import Progress
from senorita.provenance import stage_provenance
from senorita.sources import Pending, make_source
from senorita.video import VideoError, decode_errors, probe, sha256_file

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["video_id", "shard", "stage", "path", "reason"]


def clip_strides(fps: float, clip_cfg: dict[str, Any]) -> list[int]:
    """The strides a video at ``fps`` may be clipped at, preferred first.

    A fixed ``stride`` is the only one. Otherwise the stride whose clip rate is nearest
    ``target_fps`` comes first (at least 1: 16 fps -> 2, 8 fps -> 1, 30 fps -> 4), then smaller
    ones while the clip rate stays at or below ``max_fps``, so a video too short for the first
    still gives a (faster) clip instead of a reject.
    """
    if clip_cfg.get("stride"):
        return [int(clip_cfg["stride"])]
    target = float(clip_cfg.get("target_fps", 8.0))
    low = max(1, math.floor(fps / target))
    best = min((low, low + 1), key=lambda s: (abs(fps / s - target), s))
    max_fps = float(clip_cfg.get("max_fps", 2 * target))
    return [best] + [s for s in range(best - 1, 0, -1) if fps / s <= max_fps]


def clip_span(frames: int, stride: int) -> int:
    """Source frames one clip of ``frames`` frames covers at ``stride``."""
    return (frames - 1) * stride + 1


def check_video(
    path: Path, cfg: dict[str, Any], clip_cfg: dict[str, Any]
) -> tuple[dict, str | None]:
    """Probe one file; return its facts and a reject reason (None when it is usable)."""
    if not path.exists():
        return {}, "missing: file does not exist"
    size = path.stat().st_size
    if size == 0:
        return {"bytes": 0}, "empty: zero-byte file"
    try:
        info = probe(path)
    except VideoError as err:
        return {"bytes": size}, str(err)
    facts = {
        "bytes": size,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "duration": info.duration,
        "frames": info.frames,
        "codec": info.codec,
        "has_audio": info.has_audio,
    }
    if info.fps <= 0 or not math.isfinite(info.fps):
        return facts, "unreadable: no frame rate"
    stride = min(clip_strides(info.fps, clip_cfg))
    span = clip_span(clip_cfg["frames"], stride)
    floor_s = cfg.get("min_duration_s") or 0.0  # an optional floor above what one clip needs
    if info.frames < span or info.duration < floor_s:
        extra = f" and at least {floor_s} s" if floor_s else ""
        return facts, (
            f"too short: {info.duration:.2f} s, {info.frames} frames at {info.fps:g} fps "
            f"(one clip needs {span} frames: {clip_cfg['frames']} at stride {stride}{extra})"
        )
    if min(info.width, info.height) < cfg["min_short_side"]:
        return (
            facts,
            f"too small: {info.width}x{info.height} (short side < {cfg['min_short_side']})",
        )
    if cfg["verify_decode"] and (err := decode_errors(path)):
        return facts, f"corrupt or truncated: {err}"
    return facts, None


def ingest_shard(
    catalogue: Path,
    shard: int,
    source_cfg: dict[str, Any],
    cfg: dict[str, Any],
    clip_cfg: dict[str, Any],
    out: Path,
    rejects_out: Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    videos = pd.read_parquet(catalogue)
    videos = videos[videos["shard"] == shard]
    source = make_source(source_cfg, catalogue.parent)
    accepted, rejected = [], []
    rows = videos.to_dict("records")
    # A remote source fetches the whole shard at once (concurrently) before anything is probed.
    prefetch = getattr(source, "prefetch", None)
    fetched = prefetch(rows) if prefetch is not None and rows else {}
    progress = Progress(f"ingest {shard_name(shard)}", total=len(rows), unit="videos")
    for row in rows:
        if isinstance(fetched.get(row["video_id"]), Pending):
            progress.step()  # failed for now, not a verdict: the next run fetches it again
            continue
        facts, reason = _ingest_row(row, fetched, source, cfg, clip_cfg)
        if reason:
            path = facts.get("path", row.get("path"))
            log.info("reject %s (%s): %s", row["video_id"], path, reason)
            rejected.append({**_reject(row, shard), "path": path, "reason": reason})
        else:
            accepted.append({**row, **facts})
        progress.step()
    progress.done()
    acc = pd.DataFrame(accepted, columns=[*videos.columns, *_FACT_COLUMNS])
    rej = pd.DataFrame(rejected, columns=REJECT_COLUMNS)
    prov = stage_provenance("ingest", shard=shard, ingest=cfg, clips=clip_cfg)
    write_table(rej, rejects_out, prov)
    write_table(acc, out, prov)
    log.info("shard %d: %d videos accepted, %d rejected", shard, len(acc), len(rej))
    return acc, rej


_FACT_COLUMNS = [
    "bytes",
    "width",
    "height",
    "fps",
    "duration",
    "frames",
    "codec",
    "has_audio",
    "sha256",
]


def _ingest_row(
    row: dict, fetched: dict, source: Any, cfg: dict[str, Any], clip_cfg: dict[str, Any]
) -> tuple[dict, str | None]:
    """Make one video local and check it: its facts (with ``path``) and a reject reason or None."""
    got = fetched.get(row["video_id"])
    if isinstance(got, str):  # the prefetch's own reject reason
        return {}, got
    try:
        path = Path(got) if got is not None else source.materialise(row)
    except OSError as err:
        return {}, f"fetch failed: {err}"
    facts, reason = check_video(path, cfg, clip_cfg)
    if reason:
        return {"path": str(path)}, reason
    return {"path": str(path), **facts, "sha256": sha256_file(path)}, None


def _reject(row: dict, shard: int) -> dict:
    return {"video_id": row["video_id"], "shard": shard, "stage": "ingest", "path": row.get("path")}
