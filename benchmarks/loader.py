"""Training-loader throughput: ``senorita.data`` against decoding the same files with the reader
alone (PyAV, no loader), measured in the same run.

The dataset folder is written here in the pipeline's layout at the paper's clip size (33 × 336 ×
592, H.264 of moving test patterns), or taken from ``--dataset`` (a finished run's
``dataset/``). Rows: the reader alone (baseline), the project's ffmpeg-subprocess reader for
reference, ``PairDataset`` through a DataLoader with 0 and N workers, and the WebDataset stream.
A pair is one clip pair (source and target decoded, all frames). Goal: the loader in one process
within 10% of the reader alone, and faster with workers.

    python benchmarks/loader.py [--pairs 24] [--workers 2] [--dataset PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch

from senorita.data import PairDataset, collate, pair_shards
from senorita.export import export_task
from senorita.manifest import build_manifest
from senorita.video import read_frames

TASK = "deblur"


def make_dataset(root: Path, pairs: int) -> None:
    """``pairs`` pairs of 33-frame 336×592 clips in two shards, with manifest and tars."""
    rows = []
    for k in range(pairs):
        shard = k % 2
        rel = {}
        for side, suffix in (("source", "_org"), ("target", "")):
            path = root / TASK / f"{shard:05d}" / f"p{k:04d}{suffix}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            pattern = f"testsrc2=size=592x336:rate=8,hue=h={k * 15 + (90 if suffix else 0)}"
            command = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", pattern]
            command += ["-frames:v", "33", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-y"]
            subprocess.run([*command, str(path)], check=True)
            rel[side] = str(path.relative_to(root))
        rows.append(
            {
                "pair_id": f"p{k:04d}",
                "task": TASK,
                "instruction": "Sharpen the video.",
                "source_path": rel["source"],
                "target_path": rel["target"],
                "shard": shard,
                "frames": 33,
                "source_height": 336,
                "source_width": 592,
                "target_height": 336,
                "target_width": 592,
                "kept": True,
            }
        )
    df = pd.DataFrame(rows)
    tables = []
    for shard, part in df.groupby("shard"):
        path = root.parent / "shards" / f"{shard:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(path)
        tables.append(path)
    manifest = root / TASK / "manifest.parquet"
    build_manifest(tables, manifest)
    export_task(manifest, root, root / "webdataset" / TASK)


def reader_alone(root: Path, rows: pd.DataFrame) -> int:
    for row in rows.itertuples():
        for rel in (row.source_path, row.target_path):
            with av.open(str(root / rel)) as container:
                np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return len(rows)


def ffmpeg_reader(root: Path, rows: pd.DataFrame) -> int:
    for row in rows.itertuples():
        read_frames(root / row.source_path)
        read_frames(root / row.target_path)
    return len(rows)


def through(loader) -> int:
    return sum(batch["source"].shape[0] for batch in loader)


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", type=Path, help="a finished dataset folder to read instead")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker: the comparison is per decoding thread

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataset
        if root is None:
            root = Path(tmp) / "dataset"
            make_dataset(root, args.pairs)
        ds = PairDataset(root)
        sizes = ds.rows[["source_height", "source_width", "frames"]].drop_duplicates()
        if len(sizes) > 1:  # a real run mixes sizes (the experts' twins): batches need one
            ds = PairDataset(root, frames=int(sizes["frames"].min()), size=(336, 592))
        loader = lambda workers: torch.utils.data.DataLoader(  # noqa: E731
            ds, batch_size=4, collate_fn=collate, num_workers=workers
        )
        stream = lambda: torch.utils.data.DataLoader(  # noqa: E731
            pair_shards(root, frames=ds.frames.count, size=ds.frames.size),
            batch_size=4,
            collate_fn=collate,
            num_workers=args.workers,
        )
        cases = [
            ("reader alone (PyAV, baseline)", lambda: reader_alone(root, ds.rows)),
            ("ffmpeg subprocess reader (video.read_frames)", lambda: ffmpeg_reader(root, ds.rows)),
            ("PairDataset, 0 workers", lambda: through(loader(0))),
            (f"PairDataset, {args.workers} workers", lambda: through(loader(args.workers))),
            (f"WebDataset stream, {args.workers} workers", lambda: through(stream())),
        ]
        results = []
        for name, fn in cases:
            seconds, n = timed(fn)
            results.append((name, n, seconds))
    base = results[0][1] / results[0][2]
    print(f"{len(ds)} pairs, {ds.rows['frames'].iloc[0]} frames each, source and target decoded")
    print(f"{'case':46} {'pairs':>6} {'seconds':>8} {'pairs/s':>8} {'vs reader':>9}")
    for name, n, seconds in results:
        rate = n / seconds
        print(f"{name:46} {n:6d} {seconds:8.2f} {rate:8.2f} {rate / base:8.2f}x")


if __name__ == "__main__":
    main()
