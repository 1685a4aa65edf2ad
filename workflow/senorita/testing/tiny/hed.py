"""Tiny ControlNet HED annotator (the hed family), a twin of ``ControlNetHED.pth`` in
``lllyasviel/Annotators``: the same state-dict keys, stages, depths and kernel sizes (from the
fixture's shapes), channel widths cut to 4-8."""

from __future__ import annotations

from pathlib import Path

import torch

from senorita.atomic import atomic_path
from senorita.testing.real_configs import real_config

REPO = "lllyasviel/Annotators"
WIDTHS = (4, 8, 8, 8, 8)  # the real: 64, 128, 256, 512, 512


def real_shapes() -> dict[str, list[int]]:
    """The real checkpoint's parameter shapes, by name."""
    return real_config(REPO, "ControlNetHED.pth.shapes.json")


def real_depths() -> tuple[int, ...]:
    shapes = real_shapes()
    return tuple(
        sum(1 for k in shapes if k.startswith(f"block{i}.convs.") and k.endswith(".weight"))
        for i in range(1, 6)
    )


def build_hed(out: Path) -> Path:
    """ControlNetHED with the real depths and 4-8 channels per stage, saved as a plain state dict
    under the real file name, as the real one is."""
    from senorita.models.hed import DEFAULT_FILENAME, ControlNetHED

    net = ControlNetHED(widths=WIDTHS, depths=real_depths())
    with torch.no_grad():  # the real offset is about ImageNet's mean in 0..255
        net.norm.copy_(torch.tensor([123.7, 116.3, 103.5]).view(1, 3, 1, 1))
    path = out / DEFAULT_FILENAME
    out.mkdir(parents=True, exist_ok=True)
    # Saved through a file object: the archive's folder is then "archive", not the temporary
    # file's random name, so a rebuild writes the same bytes.
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(net.state_dict(), f)
    return path
