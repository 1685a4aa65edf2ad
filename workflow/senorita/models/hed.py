"""HED soft edges: the network of ControlNet's annotators (lllyasviel's ``ControlNetHED_Apache2``).

The architecture is five VGG-like stages of 3×3 conv + ReLU (2, 2, 3, 3, 3 convs; widths 64, 128,
256, 512, 512), each after the first preceded by a 2×2 max-pool, each ending in a 1×1 "side
output" projection to one channel. The input is RGB in 0..255 minus a learned per-channel offset
(``norm``). The edge map is the sigmoid of the mean of the five side outputs, each resized back to
the input size. The checkpoint (``ControlNetHED.pth`` in ``lllyasviel/Annotators``) is a plain
state dict of this module; widths and depths are read from it, so a tiny checkpoint written in the
same format (see ``senorita.testing.tiny.hed``) loads through the same code.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from senorita.models import ModelSpec

log = logging.getLogger(__name__)

WIDTHS = (64, 128, 256, 512, 512)
DEPTHS = (2, 2, 3, 3, 3)
DEFAULT_FILENAME = "ControlNetHED.pth"


class HedStage(nn.Module):
    """``depth`` 3×3 conv + ReLU layers and a 1×1 side-output projection."""

    def __init__(self, in_channels: int, width: int, depth: int):
        super().__init__()
        ins = [in_channels] + [width] * (depth - 1)
        self.convs = nn.Sequential(*(nn.Conv2d(c, width, 3, padding=1) for c in ins))
        self.projection = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor, pool: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if pool:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        for conv in self.convs:
            x = F.relu(conv(x))
        return x, self.projection(x)


class ControlNetHED(nn.Module):
    """``ControlNetHED_Apache2``; parameter names match its checkpoint (block1..block5, norm)."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, depths: tuple[int, ...] = DEPTHS):
        super().__init__()
        if len(widths) != 5 or len(depths) != 5:
            raise ValueError("HED has five stages")
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        channels = 3
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True), start=1):
            setattr(self, f"block{i}", HedStage(channels, width, depth))
            channels = width

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Side outputs (logits) of (N, 3, H, W) RGB in 0..255, finest first."""
        h = rgb - self.norm
        sides = []
        for i in range(1, 6):
            h, side = getattr(self, f"block{i}")(h, pool=i > 1)
            sides.append(side)
        return tuple(sides)

    def edges(self, rgb: torch.Tensor) -> torch.Tensor:
        """Soft edges in [0, 1], (N, H, W): sigmoid of the mean of the upsampled side outputs."""
        size = rgb.shape[-2:]
        sides = [
            F.interpolate(s.float(), size=size, mode="bilinear", align_corners=False)
            for s in self(rgb)
        ]
        return torch.sigmoid(torch.cat(sides, dim=1).mean(dim=1))

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> ControlNetHED:
        """Build with the widths and depths the checkpoint has, then load it strictly."""
        widths, depths = [], []
        for i in range(1, 6):
            convs = {
                int(m.group(1))
                for k in state
                if (m := re.fullmatch(rf"block{i}\.convs\.(\d+)\.weight", k))
            }
            if not convs:
                raise ValueError(f"not a ControlNetHED checkpoint: no block{i} convolutions")
            widths.append(int(state[f"block{i}.convs.0.weight"].shape[0]))
            depths.append(len(convs))
        net = cls(tuple(widths), tuple(depths))
        net.load_state_dict(state, strict=True)
        return net


def checkpoint_path(spec: ModelSpec) -> Path:
    """The checkpoint file: a local file, a local folder holding ``filename``, or a hub file."""
    filename = spec.options.get("filename") or DEFAULT_FILENAME
    path = Path(spec.id).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return path / filename
    if spec.is_local:
        raise FileNotFoundError(f"HED checkpoint {spec.id} does not exist")
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(spec.id, filename, revision=spec.revision))


class HedDetector:
    """HED on video frames, batched, at ``resolution`` pixels on the short side."""

    def __init__(self, net: ControlNetHED, spec: ModelSpec, resolution: int = 512):
        self.spec = spec
        self.device = spec.torch_device()
        self.dtype = spec.torch_dtype()
        self.net = net.to(self.device, self.dtype).eval()
        self.resolution = resolution

    @classmethod
    def load(cls, spec: ModelSpec, resolution: int = 512) -> HedDetector:
        path = checkpoint_path(spec)
        state = torch.load(path, map_location="cpu", weights_only=True)
        log.info("HED: loaded %s (%s on %s)", path, spec.torch_dtype(), spec.torch_device())
        return cls(ControlNetHED.from_state_dict(state), spec, resolution)

    def detect_size(self, height: int, width: int) -> tuple[int, int]:
        """ControlNet's detection size: short side ``resolution``, both sides multiples of 64."""
        k = self.resolution / min(height, width)
        return max(64, round(height * k / 64) * 64), max(64, round(width * k / 64) * 64)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Soft edges of (T, H, W, 3) uint8 RGB frames: (T, H, W) float32 in [0, 1]."""
        t, height, width, _ = frames.shape
        dh, dw = self.detect_size(height, width)
        interp = cv2.INTER_AREA if dh < height else cv2.INTER_CUBIC
        out = np.empty((t, height, width), np.float32)
        for start in range(0, t, self.spec.batch_size):
            chunk = frames[start : start + self.spec.batch_size]
            batch = np.stack([cv2.resize(f, (dw, dh), interpolation=interp) for f in chunk])
            x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).to(self.dtype)
            edges = self.net.edges(x)[:, None]
            edges = F.interpolate(edges, size=(height, width), mode="bilinear", align_corners=False)
            out[start : start + len(batch)] = edges[:, 0].clamp(0, 1).float().cpu().numpy()
        return out
