"""Tiny ControlNet's HED annotator (the hed family)."""

from __future__ import annotations

from pathlib import Path

import torch

from senorita.atomic import atomic_path


def build_hed(out: Path) -> Path:
    """ControlNetHED with 4–8 channels per stage, saved as a state dict like the real one."""
    from senorita.models.hed import DEFAULT_FILENAME, DEPTHS, ControlNetHED

    net = ControlNetHED(widths=(4, 8, 8, 8, 8), depths=DEPTHS)
    with torch.no_grad():
        net.norm.copy_(torch.tensor([123.7, 116.3, 103.5]).view(1, 3, 1, 1))
    path = out / DEFAULT_FILENAME
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(net.state_dict(), tmp)
    return path
