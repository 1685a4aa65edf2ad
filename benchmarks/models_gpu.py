"""GPU check of the model loaders on tiny models (and full-size HED with random weights).

Runs the same clip through each loader on the CPU (float32) and with device/dtype auto (CUDA,
float16 where there is a GPU), and prints shapes, dtypes, timings and the CPU/GPU differences.
Needs no weights: ``python benchmarks/models_gpu.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from senorita.models import ModelSpec
from senorita.models.depth import DepthEstimator, normalise_clip
from senorita.models.hed import ControlNetHED, HedDetector
from senorita.testing.tiny import build_tiny_models


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    tiny = build_tiny_models(tmp / "tiny")
    clip = np.random.default_rng(0).integers(0, 256, (33, 336, 592, 3), dtype=np.uint8)
    res = {}
    for dev in ["cpu", "auto"]:
        depth = DepthEstimator.load(
            ModelSpec("depth", str(tiny["depth"]), device=dev, batch_size=16)
        )
        hed = HedDetector.load(ModelSpec("hed", str(tiny["hed"]), device=dev, batch_size=16))
        t = time.perf_counter()
        dm, hm = depth(clip), hed(clip)
        sync()
        print(
            f"{dev}: {depth.spec.torch_device()} depth {next(depth.model.parameters()).dtype}"
            f" hed {next(hed.net.parameters()).dtype} shapes {dm.shape} {hm.shape}"
            f" hed range {hm.min():.3f}..{hm.max():.3f} in {time.perf_counter() - t:.2f} s"
        )
        res[dev] = (dm, hm)
    (dc, hc), (dg, hg) = res["cpu"], res["auto"]
    print("depth max relative diff", float(np.abs(dc - dg).max() / np.abs(dc).max()))
    print("hed max abs diff", float(np.abs(hc - hg).max()))
    nc, _ = normalise_clip(dc)
    ng, _ = normalise_clip(dg)
    print("normalised depth max diff (0..255)", int(np.abs(nc.astype(int) - ng).max()))
    torch.save(ControlNetHED().state_dict(), tmp / "hed_full.pth")
    full = HedDetector.load(ModelSpec("hed", str(tmp / "hed_full.pth"), batch_size=16))
    full(clip[:2])
    sync()
    t = time.perf_counter()
    out = full(clip)
    sync()
    print(
        f"full-size HED ({full.dtype} on {full.device}), 33 frames at 512: "
        f"{time.perf_counter() - t:.3f} s, finite {np.isfinite(out).all()}, "
        f"range {out.min():.3f}..{out.max():.3f}"
    )


if __name__ == "__main__":
    main()
