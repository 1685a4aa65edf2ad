"""Near-duplicate source videos, found before clips are cut (issue #18).

The same footage uploaded twice, or a re-encoded, resized, cropped or trimmed copy of it, gives
pairs that differ only in their video id: a model trained on them sees one scene twice, and the
dataset's count overstates its variety. This stage finds them from CLIP image embeddings of a few
frames per video, once over all shards (a duplicate may sit in another shard), and writes one
table the clips jobs read: a duplicate yields no clips and a reject naming the twin it copies.

- **signature**: the L2-normalised embeddings of ``frames`` frames at the midpoints of equal
  parts of the video (not its first and last frame, which are often fades or black). Only those
  frames are decoded: one ffmpeg run seeks to each time, so a long 4K video costs what a short
  one does.
- **similarity**: `video_similarity`, the best-match mean of the frames' cosines, the larger of
  the two directions (why: see there).
- **decision**: `find_duplicates`, greedy in a fixed order (shard, then row order): a video as
  similar as ``threshold`` to an earlier kept video is a duplicate of the earliest such one.
- **resume**: signatures are cached per shard beside the table (``<out>.signatures/<shard>.npz``,
  written atomically), keyed by each video's sha256 and the model and settings, so a killed job
  redoes only the shards it had not finished, and a rerun with another threshold or more shards
  loads no model for the videos it has seen.

An unreadable video is logged and kept (never a duplicate, never compared): ingest and clips
record their own errors for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import ffmpeg
import numpy as np
import pandas as pd

from senorita.atomic import atomic_path, write_table
from senorita.ids import shard_name
from senorita.journal import prune
from senorita.models import ModelSpec
from senorita.progress import Progress
from senorita.provenance import stage_provenance
from senorita.video import FFMPEG, VideoError, VideoInfo, probe

log = logging.getLogger(__name__)

DEDUP_COLUMNS = ["video_id", "shard", "duplicate_of", "similarity"]
FRAMES = 4
# CLIP ViT-L/14 puts a frame and its re-encode, resize or 80 % centre crop at 0.95 to 0.99, and
# frames a second or two apart in one shot above 0.9; distinct stock clips of one subject (two
# beaches, two city skylines) mostly fall between 0.8 and 0.93. 0.95 is also where image
# near-duplicate removal over CLIP embeddings draws the line (SemDeDup, LAION's dedup): it drops
# copies and leaves look-alikes, erring towards keeping (a missed duplicate costs less than a lost
# video). Raise it for footage of one place, lower it for many re-encoded uploads.
THRESHOLD = 0.95
# Frames are scaled in ffmpeg to this short side (never up): CLIP resizes to 224 anyway, and a
# 4K frame through a pipe is 25 MB.
SHORT_SIDE = 256
# Bump when the signature changes meaning (sampling, scaling): old caches are then ignored.
SIGNATURE_VERSION = 1
BLOCK = 1024  # videos per block of find_duplicates: (BLOCK·F)² float32 similarities in memory
VIDEOS_PER_BATCH = 16  # decoded together, then embedded in one call


class ImageEmbedder(Protocol):
    """What the stage needs of an embedder (``ClipEmbedder`` is one)."""

    def images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Normalised embeddings, (N, D) float32, of N RGB uint8 images of any sizes."""
        ...


def sample_times(duration: float, count: int) -> list[float]:
    """``count`` times at the midpoints of equal parts of ``duration`` seconds."""
    return [duration * (k + 0.5) / count for k in range(count)]


def sample_frames(
    path: str | os.PathLike[str], count: int, info: VideoInfo | None = None
) -> np.ndarray:
    """``count`` RGB frames spread evenly over a video, short side scaled to ``SHORT_SIDE``.

    One ffmpeg run with one input per time, each seeking there (a keyframe seek, then decoding
    to the exact time), so only a GOP or so around each time is decoded. Returns
    (k, H, W, 3) uint8 with 1 <= k <= count (a time past the real end, where the container's
    duration is wrong, gives no frame); raises VideoError when none decodes. ``info``: the file's
    `probe` where the caller has it (the ingest table's facts), sparing a second ffprobe.
    """
    info = info or probe(path)  # display size: ffmpeg autorotates before our filters
    if info.duration <= 0 or not math.isfinite(info.duration):
        raise VideoError(f"{path}: no duration to sample frames from")
    scale = min(1.0, SHORT_SIDE / max(1, min(info.width, info.height)))
    width, height = max(1, round(info.width * scale)), max(1, round(info.height * scale))
    segments = [
        ffmpeg.input(str(path), ss=f"{t:.3f}")
        .video.trim(end_frame=1)
        .setpts("PTS-STARTPTS")
        .filter("scale", width, height, flags="bicubic")
        .filter("setsar", 1)
        for t in sample_times(info.duration, count)
    ]
    stream = ffmpeg.concat(*segments, v=1, a=0) if len(segments) > 1 else segments[0]
    try:
        out, _ = stream.output(
            "pipe:",
            format="rawvideo",
            pix_fmt="rgb24",
            fps_mode="passthrough",  # one output frame per sampled frame, none repeated
            **{"frames:v": count},
        ).run(cmd=FFMPEG, capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as err:
        tail = (err.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise VideoError(f"{path}: frame sampling failed: {tail[-1] if tail else err}") from None
    frame_bytes = width * height * 3
    if not out or len(out) % frame_bytes:
        raise VideoError(f"{path}: sampled {len(out)} bytes, not whole {width}x{height} frames")
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def signature(embeddings: np.ndarray, count: int) -> np.ndarray:
    """(count, D) float32 from the normalised embeddings of 1..count sampled frames.

    A short video that gave fewer frames repeats them: the best match over the other video's
    frames is unchanged by a repeat, so signatures of all videos stack into one array.
    """
    return np.resize(np.asarray(embeddings, np.float32), (count, embeddings.shape[-1]))


def video_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity of two videos' (F, D) signatures, in [-1, 1] (1: the same frames).

    For each frame of one video, its best cosine among the other's frames; the mean of those over
    the frames is one direction. The best match (not frame k with frame k) makes it indifferent
    to where the sampled times fall: a trimmed copy samples other moments of the same shots. The
    mean (not the max) over frames asks that every frame has a match, so one shared still (a logo,
    a black frame) does not make two videos duplicates. The larger direction counts: a trimmed
    copy is contained in the original, whose frames outside the trim have no match in the copy,
    so the original's direction is low by design while the copy's stays near 1.
    """
    return float(_similarities(a[None], b[None], _NumpyOps)[0, 0])


def _similarities(x: Any, y: Any, ops: Any) -> Any:
    """(B, C) video similarities of signatures x (B, F, D) and y (C, F, D), numpy or torch."""
    (b, f, d), c, g = x.shape, y.shape[0], y.shape[1]
    cos = (x.reshape(b * f, d) @ y.reshape(c * g, d).T).reshape(b, f, c, g)
    x_to_y = ops.amax(cos, 3).mean(1)  # each frame of x: its best frame of y
    y_to_x = ops.amax(cos, 1).mean(2)
    return ops.maximum(x_to_y, y_to_x)


class _NumpyOps:
    """The two torch reductions `_similarities` uses, under their numpy names."""

    amax = staticmethod(np.max)
    maximum = staticmethod(np.maximum)


def find_duplicates(
    signatures: np.ndarray,
    threshold: float,
    *,
    block: int = BLOCK,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy near-duplicate removal over (N, F, D) signatures in their order.

    Video i is a duplicate when `video_similarity` to an earlier *kept* video is >= ``threshold``;
    it names the earliest such video. Returns ``duplicate_of`` (N,) int64, -1 for a kept video,
    and ``similarity`` (N,) float64 to that twin, NaN for a kept one.

    Blocks of ``block`` videos go in order: a block is compared with the kept videos of all
    earlier blocks in matrix products of (block·F) x (block·F) frames (their decisions are final),
    then within itself, resolved row by row with vector operations (the only Python loop: O(N)
    iterations). Cost: at most N²/2 · F² · D multiply-adds, fewer as duplicates drop out; for
    400k videos, F = 4, D = 768 (ViT-L/14) 1e15. Measured on a CPU: 17e9 a second a core (4,000
    videos in 5.7 s on one thread), so about an hour on 16 cores; on a GPU (``device``) the
    estimate is about a minute (float32 on an H100), not measured. Memory: the signatures
    (N·F·D·4 bytes, 4.9 GB, on ``device``) plus one (block·F)² block of similarities (64 MB).
    """
    import torch  # here, not at import: the Snakefile's parse never needs it

    n = len(signatures)
    duplicate_of = np.full(n, -1, np.int64)
    similarity = np.full(n, np.nan)
    if n == 0:
        return duplicate_of, similarity
    dev = torch.device(device)
    kept: list[tuple[torch.Tensor, np.ndarray]] = []  # (signatures, global indices) per block
    for start in range(0, n, block):
        stop = min(start + block, n)
        x = torch.from_numpy(np.ascontiguousarray(signatures[start:stop], np.float32)).to(dev)
        dup = np.full(stop - start, -1, np.int64)
        sim = np.full(stop - start, np.nan)
        for y, index in kept:  # earlier kept videos, oldest first: the first hit is the earliest
            open_rows = np.flatnonzero(dup < 0)
            if not len(open_rows):
                break
            s = _similarities(x[torch.from_numpy(open_rows).to(dev)], y, torch).cpu().numpy()
            hit = s >= threshold
            found = hit.any(1)
            first = hit.argmax(1)  # the first True: the earliest kept twin
            dup[open_rows[found]] = index[first[found]]
            sim[open_rows[found]] = s[found, first[found]]
        # Within the block: a row is compared only with the rows before it that stayed kept.
        scores = _similarities(x, x, torch).cpu().numpy()
        within = scores >= threshold
        keep = np.zeros(stop - start, bool)
        for r in range(stop - start):
            if dup[r] >= 0:
                continue
            earlier = np.flatnonzero(within[r, :r] & keep[:r])
            if len(earlier):
                dup[r], sim[r] = start + earlier[0], scores[r, earlier[0]]
            else:
                keep[r] = True
        duplicate_of[start:stop] = dup
        similarity[start:stop] = sim
        rows = np.flatnonzero(keep)
        if len(rows):
            kept.append((x[torch.from_numpy(rows).to(dev)], start + rows))
    return duplicate_of, similarity


def cache_folder(out: Path) -> Path:
    """Where the signatures of the table ``out`` are cached (not a Snakemake output: Snakemake
    deletes outputs before a job runs, and the cache is what a rerun resumes from)."""
    return out.with_name(out.name + ".signatures")


def _settings(spec: ModelSpec, frames: int) -> dict[str, Any]:
    return {
        "model": f"{spec.tag}:{spec.provenance()['dtype']}",
        "frames": frames,
        "short_side": SHORT_SIDE,
        "version": SIGNATURE_VERSION,
    }


def _load_cache(folder: Path, settings: dict[str, Any]) -> dict[str, np.ndarray]:
    """sha256 -> signature from every cached shard made with these settings."""
    found: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as data:
                if json.loads(str(data["settings"])) != settings:
                    continue
                found.update(zip(data["sha256"].tolist(), data["signatures"], strict=True))
        except (OSError, ValueError, KeyError) as err:  # a file of an older layout: recompute
            log.warning("dedup: ignoring signature cache %s: %s", path, err)
    return found


def _save_cache(path: Path, settings: dict[str, Any], sigs: dict[str, np.ndarray]) -> None:
    stacked = np.stack(list(sigs.values())) if sigs else np.zeros((0, settings["frames"], 0))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            settings=np.array(json.dumps(settings, sort_keys=True)),
            sha256=np.array(list(sigs), dtype="U64"),
            signatures=stacked.astype(np.float32),
        )


def _facts(video: dict[str, Any]) -> VideoInfo | None:
    """The ingest row's probe facts, which spare a second ffprobe per video (None if absent)."""
    facts = {f: video.get(f) for f in _INFO_FIELDS}
    if any(v is None or pd.isna(v) for v in facts.values()):
        return None
    return VideoInfo(**facts)


_INFO_FIELDS = ("width", "height", "fps", "duration", "frames", "codec", "has_audio")


class _Signatures:
    """Signatures of videos by sha256: from the cache, else decoded and embedded in batches."""

    def __init__(
        self,
        spec: ModelSpec,
        frames: int,
        load: Callable[[ModelSpec], ImageEmbedder] | None,
        folder: Path,
        workers: int,
    ):
        self.spec, self.frames, self.load, self.folder = spec, frames, load, folder
        self.settings = _settings(spec, frames)
        self.known = _load_cache(folder, self.settings)
        self.embedder: ImageEmbedder | None = None  # loaded for the first video not cached
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers))

    def shard(self, shard: int, rows: list[dict[str, Any]], progress: Progress) -> None:
        """Make the signatures of one shard's videos; cache the shard if any was made."""
        todo = [r for r in rows if r["sha256"] not in self.known]
        progress.skip(len(rows) - len(todo))
        for start in range(0, len(todo), VIDEOS_PER_BATCH):
            batch = todo[start : start + VIDEOS_PER_BATCH]
            self._embed(list(self.pool.map(self._decode, batch)))
            progress.step(len(batch))
        path = self.folder / f"{shard_name(shard)}.npz"
        if todo or not path.exists():
            mine = {r["sha256"]: self.known[r["sha256"]] for r in rows if r["sha256"] in self.known}
            _save_cache(path, self.settings, mine)

    def _decode(self, video: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
        try:
            return video, sample_frames(video["path"], self.frames, _facts(video))
        except (VideoError, OSError) as err:
            # Not cached: the next run tries again (a file being fetched, a full disk).
            log.warning("dedup: %s kept unchecked: %s", video["video_id"], err)
            return video, None

    def _embed(self, decoded: list[tuple[dict[str, Any], np.ndarray | None]]) -> None:
        good = [(video, f) for video, f in decoded if f is not None]
        if not good:
            return
        if self.embedder is None:
            self.embedder = _load_embedder(self.spec, self.load)
        emb = self.embedder.images([img for _, f in good for img in f])
        at = 0
        for video, f in good:
            self.known[video["sha256"]] = signature(emb[at : at + len(f)], self.frames)
            at += len(f)


def dedup_videos(
    videos_pattern: str,
    shards: int,
    models: dict[str, Any],
    params: dict[str, Any],
    out: Path,
    *,
    load: Callable[[ModelSpec], ImageEmbedder] | None = None,
    workers: int = 4,
) -> pd.DataFrame:
    """Find near-duplicate videos over every shard's ingest table and write one table.

    ``videos_pattern`` has a ``{shard}`` field (``shard_name``); ``params``: ``frames``,
    ``threshold``. ``load`` makes the embedder from the registry's ``clip`` entry
    (``ClipEmbedder.load`` unless given); it is called only when a video's signature is not
    cached. ``workers`` threads decode frames (ffmpeg processes) between model calls.
    The table: one row per video in shard and row order (``DEDUP_COLUMNS``); ``duplicate_of``
    and ``similarity`` are null for a kept video (and for an unreadable one, which is logged).
    """
    frames = int(params.get("frames", FRAMES))
    threshold = float(params.get("threshold", THRESHOLD))
    spec = ModelSpec.from_config(models, "clip")
    folder = cache_folder(out)
    made = _Signatures(spec, frames, load, folder, workers)
    tables = [pd.read_parquet(videos_pattern.format(shard=shard_name(s))) for s in range(shards)]
    progress = Progress("dedup", total=sum(len(t) for t in tables), unit="videos")
    order: list[tuple[str, int, str]] = []  # (video_id, shard, sha256) in decision order
    with made.pool:
        for shard, table in enumerate(tables):
            rows = table.to_dict("records")
            order += [(r["video_id"], shard, r["sha256"]) for r in rows]
            made.shard(shard, rows, progress)
    progress.done()

    checked = [i for i, (_, _, sha) in enumerate(order) if sha in made.known]
    sigs = np.stack([made.known[order[i][2]] for i in checked]) if checked else np.zeros((0, 1, 1))
    twin, sim = find_duplicates(sigs, threshold, device=str(spec.torch_device()))
    duplicate_of: list[str | None] = [None] * len(order)
    similarity = np.full(len(order), np.nan)
    for k in np.flatnonzero(twin >= 0):
        duplicate_of[checked[k]] = order[checked[twin[k]]][0]
        similarity[checked[k]] = sim[k]
    df = pd.DataFrame(
        {
            "video_id": pd.Series([v for v, _, _ in order], dtype="str"),
            "shard": pd.Series([s for _, s, _ in order], dtype="int64"),
            "duplicate_of": pd.Series(duplicate_of, dtype="str"),
            "similarity": similarity,
        },
        columns=DEDUP_COLUMNS,
    )
    prov = stage_provenance("dedup", shards=shards, threshold=threshold, **made.settings)
    write_table(df, out, prov)
    prune(folder, {f"{shard_name(s)}.npz" for s in range(shards)})  # and temp files of dead jobs
    log.info(
        "dedup: %d of %d videos are near duplicates (threshold %g; %d unreadable, kept)",
        int(df["duplicate_of"].notna().sum()),
        len(df),
        threshold,
        len(order) - len(checked),
    )
    return df


def _load_embedder(
    spec: ModelSpec, load: Callable[[ModelSpec], ImageEmbedder] | None
) -> ImageEmbedder:
    if load is None:
        from senorita.models.clip import ClipEmbedder

        load = ClipEmbedder.load
    return load(spec)
