"""The video experts at full size on a GPU: seconds per denoising step and per clip.

Each expert is built from the real base checkpoint's published config (random weights, no
download: ``senorita.experts.full_size``) in bf16 and runs the model call of one denoising step
at the paper's clip size, 33 × 336 × 592 (latent 9 × 42 × 74, 226 text tokens), batch 2 for
classifier-free guidance (every expert's configured guidance is above 1): the ControlNet, then
the transformer. Reported per expert: seconds per step, seconds per clip at 50 steps (model calls
only; the T5 encoder and the VAE run once per clip and are not counted), peak GPU memory, the
FLOPs of that forward (counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta
device) and the TFLOP/s achieved.

Baselines measured in the same run:
- the FLOP floor: the step's FLOPs at ``--peak-tflops`` (default 989, an H100 SXM's dense bf16);
  "x floor" is the measured time over it (1 / model FLOPs utilisation);
- diffusers' own ``CogVideoXTransformer3DModel`` with the base checkpoint's config (no widening,
  no ControlNet; its learned position table off, since diffusers refuses it at this size): "x
  base" is the expert's step over the base's, the cost of what the expert adds.

The super-resolver runs one tile at the clip size per model call, batch 1 (no guidance), and
its clip costs ``tiles`` calls per step: 3 × 3 tiles at 2× (672 × 1184, ``--scale``), as
``experts/tiling.py`` spreads them with 64 px of overlap at least.

Goals (one H100-class GPU): 2B experts ≤ 10 s per clip, 5B experts ≤ 25 s per clip; the
super-resolver no slower per clip than the fastest expert measured in the same run (the pair it
lifts was made by one of them).

    python benchmarks/experts_gpu.py [--experts remover inpainter] [--iters 5]
    python benchmarks/experts_gpu.py --tiny   # twin-size models on the CPU (the test suite's)
"""

from __future__ import annotations

import argparse
import gc
import time
from functools import partial
from typing import Any

import diffusers
import torch
from diffusers import CogVideoXTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from senorita.experts.full_size import (
    EXPERTS,
    build,
    build_on_meta,
    clip_inputs,
    forward,
    parameters,
    transformer_config,
)

GOAL_S_PER_CLIP = {"THUDM/CogVideoX-2b": 10.0, "THUDM/CogVideoX-5b-I2V": 25.0}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(expert: str, config: dict[str, Any], layers: int, clip: tuple, batch: int) -> int:
    transformer, controlnet = build_on_meta(expert, config, layers)
    inputs = clip_inputs(transformer, controlnet, *clip, batch=batch)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(transformer, controlnet, inputs)
    return counter.get_total_flops()


def time_steps(call, device: torch.device, warmup: int, iters: int) -> float:
    """Mean seconds of ``call()`` after ``warmup`` calls."""
    with torch.no_grad():
        for _ in range(warmup):
            call()
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            call()
        sync(device)
    return (time.perf_counter() - start) / iters


def free(device: torch.device) -> None:
    if device.type == "cuda":  # give the last model's memory back before the next one
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def bench_expert(expert: str, args, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    config = transformer_config(expert)
    if args.tiny:  # the tiny twin: the real config with only its sizes shrunk
        from senorita.testing.tiny.cogvideox import TRANSFORMER_SIZES

        config.update(TRANSFORMER_SIZES)
    clip = (args.frames, args.height, args.width)
    batch = 2  # classifier-free guidance: negative and positive prompt in one batch
    tiles = 1
    if expert == "super_resolver":  # one tile per call, no guidance; tiles calls per step
        from senorita.experts.tiling import spread

        batch = 1
        overlap = min(64, args.height // 4)  # the default's 64 px; a quarter tile at twin size
        tiles = len(spread(args.scale * args.height, args.height, overlap)) * len(
            spread(args.scale * args.width, args.width, overlap)
        )
    flops = count_flops(expert, config, args.controlnet_layers, clip, batch)

    free(device)
    transformer, controlnet = build(expert, config, args.controlnet_layers, device, dtype)
    inputs = clip_inputs(transformer, controlnet, *clip, batch=batch)
    weights = (parameters(transformer) + parameters(controlnet)) * torch.finfo(dtype).bits / 8
    call = partial(forward, transformer, controlnet, inputs)
    step = time_steps(call, device, args.warmup, args.iters)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
    row = {
        "expert": expert,
        "base": EXPERTS[expert].base,
        "params": parameters(transformer) + parameters(controlnet),
        "weights_gb": weights / 1e9,
        "step_s": step,
        "clip_s": step * args.steps * tiles,
        "tiles": tiles,
        "peak_gb": peak / 1e9,
        "tflop": flops / 1e12,
        "tflops": flops / step / 1e12,
        "x_floor": step / (flops / (args.peak_tflops * 1e12)),
    }
    del transformer, controlnet, inputs, call
    free(device)

    # Baseline: diffusers' own transformer, the base config as it is (no widening, no ControlNet).
    base_cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    base_cfg["use_learned_positional_embeddings"] = False  # diffusers refuses it at 42 × 74
    with torch.device(device):
        base = CogVideoXTransformer3DModel.from_config(base_cfg).to(dtype).eval()
    base_inputs = clip_inputs(base, None, *clip, batch=batch)
    base_inputs.pop("control")
    call = partial(base, **base_inputs)
    row["base_step_s"] = time_steps(call, device, args.warmup, args.iters)
    row["x_base"] = step / row["base_step_s"]
    del base, base_inputs, call
    free(device)
    row["goal"] = GOAL_S_PER_CLIP[row["base"]]
    return met(row, args.tiny)


def met(row: dict[str, Any], tiny: bool) -> dict[str, Any]:
    row["met"] = "n/a" if tiny else "yes" if row["clip_s"] <= row["goal"] else "no"
    return row


COLUMNS = [
    ("expert", "{:<16}"),
    ("params", "{:>9}"),
    ("step_s", "{:>9}"),
    ("tiles", "{:>5}"),
    ("clip_s", "{:>9}"),
    ("peak_gb", "{:>8}"),
    ("tflop", "{:>10}"),
    ("tflops", "{:>9}"),
    ("x_floor", "{:>8}"),
    ("base_step_s", "{:>11}"),
    ("x_base", "{:>7}"),
    ("goal", "{:>7}"),
    ("met", "{:>4}"),
]
HEADERS = {
    "params": "params M",
    "step_s": "s/step",
    "clip_s": "s/clip",
    "peak_gb": "peak GB",
    "tflop": "TFLOP/step",
    "tflops": "TFLOP/s",
    "base_step_s": "base s/step",
    "goal": "goal s",
}


def cell(key: str, value: Any) -> str:
    if key == "params":
        return f"{value / 1e6:.1f}"
    if isinstance(value, float):
        return (
            f"{value:.4g}"
            if key in ("tflop", "tflops", "step_s", "base_step_s")
            else f"{value:.2f}"
        )
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [" ".join(fmt.format(HEADERS.get(k, k)) for k, fmt in COLUMNS)]
    lines += [" ".join(fmt.format(cell(k, row[k])) for k, fmt in COLUMNS) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", nargs="+", default=list(EXPERTS), choices=list(EXPERTS))
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--height", type=int, default=336)
    parser.add_argument("--width", type=int, default=592)
    parser.add_argument("--steps", type=int, default=50, help="denoising steps per clip")
    parser.add_argument("--scale", type=int, default=2, help="the super-resolver's output scale")
    parser.add_argument("--controlnet-layers", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16")
    parser.add_argument(
        "--tiny", action="store_true", help="twin-size models on the CPU, float32, a small clip"
    )
    args = parser.parse_args()
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
        args.frames, args.height, args.width = 9, 64, 112
        args.controlnet_layers, args.warmup, args.iters = 1, 1, 1
        torch.set_num_threads(1)  # tiny matrices: threads only add contention
    elif not torch.cuda.is_available():
        parser.error("no CUDA GPU (use --tiny for the CPU check)")
    else:
        device, dtype = torch.device("cuda"), torch.bfloat16
    torch.manual_seed(0)
    diffusers.utils.logging.set_verbosity_error()  # "modules to keep in float32: []" on .to()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (twin sizes)"
    print(
        f"{where}, {dtype}: {args.frames} x {args.height} x {args.width}, batch 2 (CFG), "
        f"{args.steps} steps per clip, ControlNet {args.controlnet_layers} blocks, "
        f"FLOP floor at {args.peak_tflops:g} TFLOP/s"
    )
    rows = []
    for expert in args.experts:
        rows.append(bench_expert(expert, args, device, dtype))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    others = [r["clip_s"] for r in rows if r["expert"] != "super_resolver"]
    for row in rows:  # the super-resolver's goal: the fastest expert's clip, this run
        if row["expert"] == "super_resolver" and others:
            row["goal"] = min(others)
            met(row, args.tiny)
    print()
    print(table(rows))
    print(
        "s/clip = s/step x steps (model calls only); x floor = s/step over the FLOP floor; "
        "x base = s/step over diffusers' base transformer's"
    )


if __name__ == "__main__":
    main()
