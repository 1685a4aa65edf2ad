"""Stable ids, shard assignment and per-item seeds.

Everything here is a pure function of its inputs (no Python ``hash``, no process state), so ids,
shards and seeds are the same on every machine and every rerun.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(*parts: object, length: int = 16) -> str:
    """Hex digest of the parts joined with a separator that cannot occur in ``str`` of ints."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def shard_of(video_id: str, n_shards: int) -> int:
    """The shard a video belongs to: a stable hash of its id modulo the shard count."""
    return int(hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:12], 16) % n_shards


def shard_name(shard: int) -> str:
    """A shard's name in paths and logs (five digits: 00042), the one place it is formatted."""
    return f"{shard:05d}"


def derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from the parts (e.g. global seed, task, clip id)."""
    return int(stable_hash(*parts, length=16), 16) & ((1 << 63) - 1)


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))
