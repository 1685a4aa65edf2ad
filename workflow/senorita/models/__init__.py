"""The model registry: which weights each model family loads, where it runs, in what precision.

The config's ``models`` section names one entry per family (see the schema for defaults):
``id`` (a hub repo id or a local path), ``revision``, ``dtype``, ``device`` and ``batch_size``,
plus family options. Each family has one loader module here that calls the library's own
``from_pretrained`` (or the family's own checkpoint format), once per shard job.

``device: auto`` is CUDA when available, else CPU. ``dtype: auto`` is float16 on a GPU and
float32 on the CPU (half precision on CPU is slow and some kernels lack it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a model loads, not by the Snakefile's parse
    import torch

# The precisions a config may name (torch's dtype of the same name).
DTYPES = ("float32", "float16", "bfloat16")

# Families whose loaders exist, and the control-map kinds each one makes.
FAMILIES_FOR_KIND = {"depth": ("depth",), "hed": ("hed",), "scribble": ("hed",), "canny": ()}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry, validated by the config schema."""

    family: str
    id: str
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, models: dict[str, Any], family: str) -> ModelSpec:
        try:
            entry = dict(models[family])
        except KeyError:
            raise ValueError(f"config models.{family} is missing") from None
        common = {k: entry.pop(k) for k in ("id", "revision", "dtype", "device", "batch_size")}
        return cls(family=family, options=entry, **common)

    @property
    def is_local(self) -> bool:
        """A local path (file or folder) rather than a hub repo id."""
        # Hub ids are "name" or "org/name"; anything else (or anything that exists) is a path.
        return (
            Path(self.id).expanduser().exists()
            or self.id.startswith(("/", ".", "~"))
            or self.id.count("/") >= 2
        )

    @property
    def hub_revision(self) -> str | None:
        """The revision to ask the hub for (none for a local path, which has no revisions)."""
        return None if self.is_local else self.revision

    def pretrained_kwargs(self, **extra: Any) -> dict[str, Any]:
        """The arguments every ``from_pretrained`` of this entry shares (plus ``extra``)."""
        return {"revision": self.hub_revision, **extra}

    @property
    def tag(self) -> str:
        """``model@revision`` as rows record it (``@local`` for a local path)."""
        from senorita.provenance import model_tag

        prov = self.provenance()
        return model_tag(prov["model"], prov["revision"])

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype, self.torch_device())

    def provenance(self) -> dict[str, Any]:
        """What a manifest row records about the model that made it."""
        return {
            "model": self.id,
            "revision": None if self.is_local else (self.revision or "main"),
            "dtype": str(self.torch_dtype()).removeprefix("torch."),
        }


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        known = ", ".join(["auto", *DTYPES])
        raise ValueError(f"unknown dtype {name!r}; expected one of {known}")
    return getattr(torch, name)


def families_for(kinds: list[str]) -> list[str]:
    """The model families a set of control-map kinds needs, in a stable order."""
    needed = {f for k in kinds for f in FAMILIES_FOR_KIND[k]}
    return sorted(needed)
