"""Training loaders for a finished dataset: decoded source and target frames, the instruction and
the pair's manifest row, ready for a PyTorch training loop.

- ``PairDataset(folder)``: a map-style dataset over the task manifests (kept pairs by default).
- ``PairSampler``: seeded order per epoch, plain or drawn by task share (e.g. Señorita-2M's).
- ``pair_shards(folder)``: the same items streamed from the WebDataset tars, for clusters where
  reading many small files hurts.
- ``collate``: the ``collate_fn`` that batches items (frames stacked, the rest as lists).

An item is ``{"source", "target"}`` (uint8 tensors, ``(T, 3, H, W)``, RGB) plus ``instruction``,
``task``, ``pair_id`` and ``meta`` (the manifest row as a dict). Videos are decoded with PyAV, in
process, so several DataLoader workers decode in parallel without a subprocess per clip.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from senorita.attribution import plain

log = logging.getLogger(__name__)

SENORITA_2M = "senorita2m"  # the shares the paper's dataset has, from the task registry


@dataclass(frozen=True)
class Frames:
    """Which frames an item holds, and at what size.

    ``count`` frames (all where None) from the first, every ``stride``-th; ``size`` (height,
    width) resizes them (antialiased bilinear), None keeps the clip's size.
    """

    count: int | None = None
    stride: int = 1
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise ValueError(f"frames: count must be at least 1, got {self.count}")
        if self.stride < 1:
            raise ValueError(f"frames: stride must be at least 1, got {self.stride}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"frames: size must be (height, width), got {self.size}")

    def indices(self, available: int, name: str) -> np.ndarray:
        """The frame indices to take from a clip of ``available`` frames; a clip too short for
        them is an error naming it (``name``)."""
        count = self.count if self.count is not None else -(-available // self.stride)
        idx = np.arange(count) * self.stride
        if idx[-1] >= available:
            raise ValueError(
                f"{name}: {available} frames, too few for {count} at stride {self.stride} "
                f"({idx[-1] + 1} needed)"
            )
        return idx


def decode(file: str | Path | io.BytesIO, indices: np.ndarray, name: str) -> np.ndarray:
    """Decode the frames at ``indices`` (sorted) of a video file or buffer to (T, H, W, 3) uint8
    RGB, stopping after the last one."""
    wanted = set(indices.tolist())
    last = int(indices[-1])
    frames = []
    try:
        with av.open(file) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if i >= last:
                    break
    except (av.error.FFmpegError, OSError) as err:
        raise ValueError(f"{name}: cannot decode: {err}") from None
    if len(frames) < len(indices):
        raise ValueError(f"{name}: decoded {len(frames)} of the {len(indices)} frames asked for")
    return np.stack(frames)


def to_tensor(frames: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames as a (T, 3, H, W) uint8 tensor, resized to ``size``."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if size is not None and tuple(video.shape[-2:]) != tuple(size):
        resized = torch.nn.functional.interpolate(
            video.float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False
        )
        video = resized.round_().clamp_(0, 255).to(torch.uint8)
    return video.contiguous()


def make_item(
    row: Mapping[str, Any],
    source: str | Path | io.BytesIO,
    target: str | Path | io.BytesIO,
    frames: Frames,
) -> dict[str, Any]:
    """One item from a manifest row and its two videos (paths or buffers)."""
    pair = row["pair_id"]
    idx = frames.indices(int(row["frames"]), f"pair {pair} ({row['task']})")
    return {
        "source": to_tensor(decode(source, idx, f"{pair} source ({source})"), frames.size),
        "target": to_tensor(decode(target, idx, f"{pair} target ({target})"), frames.size),
        "instruction": row["instruction"],
        "task": row["task"],
        "pair_id": pair,
        "meta": {k: plain(v) for k, v in row.items()},
    }


def dataset_tasks(root: Path, tasks: Sequence[str] | None) -> list[str]:
    """The task folders of a dataset that have a manifest (all, or those named: one without a
    manifest is an error naming it)."""
    found = sorted(p.parent.name for p in root.glob("*/manifest.parquet"))
    if tasks is None:
        if not found:
            raise ValueError(f"{root}: no <task>/manifest.parquet here; is it a dataset folder?")
        return found
    if missing := [t for t in tasks if t not in found]:
        raise ValueError(f"{root}: no manifest for task(s) {', '.join(missing)}")
    return list(tasks)


class PairDataset(Dataset):
    """The pairs of a dataset folder as decoded frames (map-style: index → item).

    ``tasks`` (default: every task folder), ``kept_only`` (default: pairs that passed the
    filters), ``frames``/``stride``/``size`` as in ``Frames``. Video paths come from the manifest
    relative to ``root``, so a copied or moved folder loads the same.
    """

    def __init__(
        self,
        root: str | Path,
        tasks: Sequence[str] | None = None,
        kept_only: bool = True,
        frames: int | None = None,
        stride: int = 1,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.root = Path(root)
        self.frames = Frames(frames, stride, size)
        tables = [
            pd.read_parquet(self.root / t / "manifest.parquet")
            for t in dataset_tasks(self.root, tasks)
        ]
        rows = pd.concat([t for t in tables if len(t)] or tables[:1], ignore_index=True)
        if kept_only:
            rows = rows[rows["kept"].astype(bool)]
        self.rows = rows.reset_index(drop=True)
        log.info("%s: %d pairs in %d tasks", self.root, len(self.rows), len(tables))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def tasks(self) -> np.ndarray:
        """Each item's task, in index order."""
        return self.rows["task"].to_numpy()

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows.iloc[index].to_dict()
        return make_item(
            row,
            self.root / row["source_path"],
            self.root / row["target_path"],
            self.frames,
        )


def task_shares(shares: Mapping[str, float] | str) -> dict[str, float]:
    """Shares by task: a mapping as given, or ``"senorita2m"`` for the registry's shares."""
    if shares == SENORITA_2M:
        from senorita.tasks import all_tasks

        return {t.id: t.share for t in all_tasks()}
    if isinstance(shares, str):
        raise ValueError(f"shares: {shares!r} is not a mapping or {SENORITA_2M!r}")
    return dict(shares)


class PairSampler(Sampler[int]):
    """Indices of a ``PairDataset`` in a seeded order that changes with ``set_epoch``.

    Without ``shares``: each item once per epoch, shuffled. With ``shares`` (task → weight, or
    ``"senorita2m"``): ``num_samples`` draws (default: the dataset's size), each task drawn by its
    share among the tasks present, and within a task its items in a shuffled cycle, so a small
    task repeats only after all its items came once. The same seed and epoch give the same
    indices in every process (and on every rank).
    """

    def __init__(
        self,
        dataset: PairDataset,
        seed: int = 0,
        shares: Mapping[str, float] | str | None = None,
        num_samples: int | None = None,
    ) -> None:
        self.seed, self.epoch = seed, 0
        self.num_samples = num_samples if num_samples is not None else len(dataset)
        tasks = dataset.tasks
        self.by_task = {t: np.flatnonzero(tasks == t) for t in dict.fromkeys(tasks.tolist())}
        self.weights = None
        if shares is not None:
            given = task_shares(shares)
            if unknown := sorted(set(self.by_task) - set(given)):
                raise ValueError(f"shares: no share for task(s) {', '.join(unknown)}")
            w = np.array([float(given[t]) for t in self.by_task])
            if (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"shares: weights must be non-negative, not all 0: {given}")
            self.weights = w / w.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is None:
            n = sum(len(v) for v in self.by_task.values())
            order = rng.permutation(n)
            reps = -(-self.num_samples // n) if n else 0
            order = np.concatenate([order, *(rng.permutation(n) for _ in range(reps - 1))])
            yield from (int(i) for i in order[: self.num_samples])
            return
        names = list(self.by_task)
        drawn = rng.choice(len(names), size=self.num_samples, p=self.weights)
        cycles = {t: iter(()) for t in names}
        for k in drawn:
            task = names[k]
            nxt = next(cycles[task], None)
            if nxt is None:
                cycles[task] = iter(rng.permutation(self.by_task[task]).tolist())
                nxt = next(cycles[task])
            yield int(nxt)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch: ``source`` and ``target`` stacked to (B, T, 3, H, W), the rest as lists."""
    shapes = {tuple(i["source"].shape) for i in items} | {tuple(i["target"].shape) for i in items}
    if len(shapes) > 1:
        raise ValueError(
            f"a batch mixes frame shapes {sorted(shapes)}: pass frames= and size= to the loader"
        )
    batch: dict[str, Any] = {k: torch.stack([i[k] for i in items]) for k in ("source", "target")}
    for key in ("instruction", "task", "pair_id", "meta"):
        batch[key] = [i[key] for i in items]
    return batch


def shard_urls(root: str | Path, tasks: Sequence[str] | None = None) -> list[str]:
    """The WebDataset tars of a dataset folder (``webdataset/<task>/<task>-<shard>.tar``)."""
    base = Path(root) / "webdataset"
    names = tasks if tasks is not None else sorted(p.name for p in base.glob("*") if p.is_dir())
    urls = [str(p) for t in names for p in sorted((base / t).glob(f"{t}-*.tar"))]
    if not urls:
        raise ValueError(f"{base}: no WebDataset tars for {', '.join(names) or 'any task'}")
    return urls


def pair_shards(
    root: str | Path,
    tasks: Sequence[str] | None = None,
    kept_only: bool = True,
    frames: int | None = None,
    stride: int = 1,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    shuffle: int = 0,
):
    """The pairs streamed from the dataset's WebDataset tars (an ``IterableDataset``).

    Tars are split across DataLoader workers and across ranks; with ``seed`` their order is
    shuffled deterministically, and ``shuffle`` > 0 also shuffles items in a buffer of that size.
    Items are those of ``PairDataset``.
    """
    import webdataset as wds

    spec = Frames(frames, stride, size)

    def item(sample: dict[str, Any]) -> dict[str, Any]:
        row = json.loads(sample["json"])
        return make_item(
            row, io.BytesIO(sample["source.mp4"]), io.BytesIO(sample["target.mp4"]), spec
        )

    pipeline = wds.WebDataset(
        shard_urls(root, tasks),
        shardshuffle=False if seed is None else 1000,
        detshuffle=seed is not None,
        seed=seed,
        nodesplitter=wds.split_by_node,
        empty_check=False,
    )
    if kept_only:
        pipeline = pipeline.select(lambda s: bool(json.loads(s["json"]).get("kept", True)))
    if shuffle:
        pipeline = pipeline.shuffle(shuffle, seed=seed)  # None: a fresh order each run
    return pipeline.map(item)
