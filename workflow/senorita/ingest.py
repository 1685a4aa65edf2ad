"""Stage 1, per shard: make each video local, probe it, and accept or reject it with a reason.

A video is rejected (and the run goes on) when it cannot be read, has no video stream, fails a
full decode (truncated or corrupt), or is too short or too small for one clip.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_table
from senorita.provenance import stage_provenance
from senorita.sources import make_source
from senorita.video import VideoError, decode_errors, probe, sha256_file

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["video_id", "shard", "stage", "path", "reason"]


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
    span = (clip_cfg["frames"] - 1) * clip_cfg["stride"] + 1
    if info.duration < cfg["min_duration_s"] or info.frames < span:
        return facts, (
            f"too short: {info.duration:.2f} s, {info.frames} frames "
            f"(need {cfg['min_duration_s']} s and {span} frames for one clip)"
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
    for row in rows:
        got = fetched.get(row["video_id"])
        if isinstance(got, str):
            log.info("reject %s: %s", row["video_id"], got)
            rejected.append({**_reject(row, shard), "reason": got})
            continue
        try:
            path = Path(got) if got is not None else source.materialise(row)
        except OSError as err:
            rejected.append({**_reject(row, shard), "reason": f"fetch failed: {err}"})
            continue
        facts, reason = check_video(path, cfg, clip_cfg)
        if reason:
            log.info("reject %s (%s): %s", row["video_id"], path, reason)
            rejected.append({**_reject(row, shard), "path": str(path), "reason": reason})
            continue
        accepted.append({**row, "path": str(path), **facts, "sha256": sha256_file(path)})
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


def _reject(row: dict, shard: int) -> dict:
    return {"video_id": row["video_id"], "shard": shard, "stage": "ingest", "path": row.get("path")}
