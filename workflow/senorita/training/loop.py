"""The training loop of one expert (accelerate: multi-GPU, bf16, gradient checkpointing and
accumulation), with checkpoints a killed job resumes from.

Each optimizer step draws its samples, noise and timesteps from generators seeded by (seed,
step, micro-batch, process), so a resumed run sees exactly what an uninterrupted one would: with
the model, optimizer and learning-rate scheduler restored from the last checkpoint, its final
weights are the same. The objective is the base model's: v-prediction on the scheduler's
training timesteps (CogVideoX is trained that way), or epsilon when the scheduler says so.

Precision: the transformer and ControlNet hold fp32 weights (and AdamW state), the frozen T5
and VAE the mixed-precision dtype (``build.weight_dtypes``); the inputs T5 and the VAE make are
cast to fp32 and autocast runs the models in low precision. The learning-rate schedule counts
optimizer steps: one step of it per optimizer step, whatever the processes and accumulation.

``work`` holds ``checkpoint-<step>/`` folders (accelerate state plus ``state.json``, written
whole then renamed) and ``loss.csv``; the final checkpoint is a diffusers pipeline folder that
the expert rules load by path, with ``training.json`` beside it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from senorita.progress import Progress
from senorita.training.build import build_expert, trainable_parameters, weight_dtypes
from senorita.training.views import AnnotatedClips, ExpertView, Sample

log = logging.getLogger(__name__)

STATE = "state.json"
CHECKPOINT = re.compile(r"checkpoint-\d+")


def checkpoints(work: Path) -> list[Path]:
    """Complete checkpoints, oldest first. A half-written one has no state.json yet, or is still
    ``checkpoint-<step>.tmp`` (a kill between writing its state and the rename leaves it so)."""
    found = [
        p
        for p in work.glob("checkpoint-*")
        if CHECKPOINT.fullmatch(p.name) and (p / STATE).exists() and p.is_dir()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def total_steps(cfg: dict[str, Any], samples: int, processes: int) -> int:
    """``steps`` if set, else one epoch: every sample once across all processes."""
    if cfg["steps"]:
        return int(cfg["steps"])
    per_step = cfg["batch_size"] * cfg["gradient_accumulation"] * processes
    return max(1, math.ceil(samples / per_step))


class LatentCache:
    """Clip latents and prompt embeddings saved on first use (``cache_latents``): the VAE and
    the T5 encoder run once per clip and prompt, not once per step. Keyed by what determines
    them (clip, frames, size; prompt), so a changed setting never reads a stale entry."""

    def __init__(self, folder: Path, key: dict[str, Any]):
        self.folder = folder
        self.key = json.dumps(key, sort_keys=True)
        self.device = torch.device("cpu")  # where loaded entries go (the pipeline's device)
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, kind: str, what: str, compute) -> torch.Tensor:
        import hashlib

        digest = hashlib.sha256(f"{self.key}|{kind}|{what}".encode()).hexdigest()[:24]
        path = self.folder / f"{kind}-{digest}.pt"
        if path.exists():
            return torch.load(path, map_location="cpu").to(self.device)
        value = compute()
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        torch.save(value.cpu(), tmp)
        os.replace(tmp, path)
        return value


def conditioning(
    pipe, name: str, batch: list[Sample], cache: LatentCache | None = None
) -> dict[str, torch.Tensor]:
    """Latents, conditioning and control of a batch, as the expert's pipeline assembles them."""
    if cache is not None:
        cache.device = pipe._execution_device
    latents, condition, control = [], [], []
    for s in batch:
        if cache is not None and s.source:
            video = cache.get("video", s.source, lambda s=s: pipe.encode(pipe.to_tensor(s.frames)))
        else:
            video = pipe.encode(pipe.to_tensor(s.frames))
        latents.append(video)
        if name in ("remover", "local_stylizer", "inpainter"):
            condition.append(pipe.inpainting_condition(s.frames, s.mask))
        elif name == "super_resolver":  # the degraded video, at the target's size
            condition.append(pipe.encode(pipe.to_tensor(s.low_res)))
        else:  # global stylizer: frame 0's latent, zeros after it
            condition.append(pipe.first_frame_latents(s.frames[0], tuple(video.shape[1:])))
        if name == "local_stylizer":
            control.append(pipe.control_latents(s.controls, s.mask))
        elif name == "global_stylizer":
            control.append(pipe.control_latents(s.controls, None))
    out = {"latents": torch.cat(latents), "condition": torch.cat(condition)}
    if control:
        out["control"] = torch.cat(control)
    if cache is not None:
        embeds = [
            cache.get("text", s.prompt, lambda s=s: pipe.encode_prompt([s.prompt])) for s in batch
        ]
        out["embeds"] = torch.cat(embeds)
    else:
        out["embeds"] = pipe.encode_prompt([s.prompt for s in batch])
    return out


def prepare_training(accelerator, models: list, params: list, cfg: dict[str, Any]):
    """The prepared models, the optimizer and the learning-rate scheduler (not prepared).

    accelerate's prepared scheduler (``AcceleratedScheduler``) steps the wrapped scheduler
    ``num_processes`` times per optimizer step unless ``split_batches``: it assumes the schedule
    was written in per-process batches, as diffusers' scripts do by multiplying the warmup by the
    process count. Our schedule is written in optimizer steps, so on 8 GPUs the prepared one would
    end the warmup 8 times too early. We keep the scheduler out of ``prepare``, step it ourselves
    once per optimizer step (``optimizer_step``), and register it so checkpoints still hold it.
    """
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    lr_scheduler = get_scheduler(
        "constant_with_warmup", optimizer, num_warmup_steps=cfg["warmup_steps"]
    )
    prepared = accelerator.prepare(*models, optimizer)
    accelerator.register_for_checkpointing(lr_scheduler)
    return list(prepared[:-1]), prepared[-1], lr_scheduler


def optimizer_step(accelerator, optimizer, lr_scheduler, params: list, max_grad_norm) -> None:
    """After a micro-batch's backward: clip, step and zero (the prepared optimizer does nothing
    until the last micro-batch of an accumulation), and step the schedule once per real step."""
    if accelerator.sync_gradients and max_grad_norm:
        accelerator.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
        lr_scheduler.step()
    optimizer.zero_grad()


def train_expert(
    name: str,
    cfg: dict[str, Any],
    patterns: dict[str, str],
    shards: int,
    out: Path,
    work: Path,
) -> Path:
    from accelerate import Accelerator

    from senorita.atomic import write_text
    from senorita.training.curves import loss_curve

    cuda = torch.cuda.is_available()
    precision = cfg["mixed_precision"]
    if precision == "auto":
        precision = "bf16" if cuda else "no"
    accelerator = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=cfg["gradient_accumulation"],
        cpu=not cuda,
    )
    view = ExpertView(name, AnnotatedClips(patterns, shards, cfg), cfg)
    samples = len(view.objects) if view.objects else len(view.clip_ids)
    steps = total_steps(cfg, samples, accelerator.num_processes)

    pipe = build_expert(name, cfg, weight_dtypes(precision))
    pipe.set_progress_bar_config(disable=True)
    pipe.to(accelerator.device)
    params = trainable_parameters(pipe, name, cfg["parts"])
    if cfg["gradient_checkpointing"]:
        pipe.transformer.enable_gradient_checkpointing()
        if pipe.controlnet is not None:
            pipe.controlnet.enable_gradient_checkpointing()
    models = [pipe.transformer] + ([pipe.controlnet] if pipe.controlnet is not None else [])
    models, optimizer, lr_scheduler = prepare_training(accelerator, models, params, cfg)
    transformer, controlnet = models[0], (models[1] if len(models) > 1 else None)

    work.mkdir(parents=True, exist_ok=True)
    cache = None
    if cfg["cache_latents"]:
        key = {k: cfg[k] for k in ("init", "revision", "frames", "height", "width")}
        key["precision"] = precision  # the VAE's and T5's dtype
        cache = LatentCache(work / "cache", key)
    step = 0
    if done := checkpoints(work):
        accelerator.load_state(str(done[-1]))
        step = json.loads((done[-1] / STATE).read_text())["step"]
        log.info("%s: resuming from %s (step %d of %d)", name, done[-1].name, step, steps)
    losses = _read_losses(work / "loss.csv", step)
    kinds: Counter[str] = Counter()
    dropped = 0
    progress = Progress(f"training the {name}", total=steps, unit="steps", logger=log)
    progress.skip(step)
    scheduler = pipe.scheduler
    v_prediction = scheduler.config.prediction_type == "v_prediction"
    rotary = None
    made: dict[tuple[int, int], tuple[list[Sample], dict[str, torch.Tensor]]] = {}
    while step < steps:
        for micro in range(cfg["gradient_accumulation"]):
            # fixed_batch: every step trains on step 0's samples, noise and timesteps (the
            # overfitting check of a new recipe or model).
            at = 0 if cfg["fixed_batch"] else step
            seed = [cfg["seed"], at, micro, accelerator.process_index]
            rng = np.random.default_rng(seed)
            gen = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(2**62)))
            if (at, micro) in made:  # fixed_batch: step 0's samples, decoded and encoded once
                batch, inputs = made[at, micro]
            else:
                batch = [view.sample(rng) for _ in range(cfg["batch_size"])]
                with torch.no_grad():
                    inputs = conditioning(pipe, name, batch, cache)
                # The frozen parts' outputs (maybe bf16) in fp32, the trained parts' dtype.
                inputs = {k: v.float() for k, v in inputs.items()}
                if cfg["fixed_batch"]:
                    made[at, micro] = batch, inputs
            kinds.update(s.kind for s in batch)
            dropped += sum(s.prompt_dropped for s in batch)
            x0 = inputs["latents"]
            if rotary is None:
                _, f, _, h, w = x0.shape
                rotary = pipe._rotary(h * pipe.spatial_factor, w * pipe.spatial_factor, f)
            noise = torch.randn(x0.shape, generator=gen).to(x0.device, x0.dtype)
            t = torch.randint(
                0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen
            ).to(x0.device)
            noisy = scheduler.add_noise(x0, noise, t)
            target = scheduler.get_velocity(x0, noise, t) if v_prediction else noise
            model_input = torch.cat([noisy, inputs["condition"]], dim=2)
            with accelerator.accumulate(*models), accelerator.autocast():
                residuals = None
                if controlnet is not None:
                    residuals = controlnet(
                        model_input, inputs["control"], inputs["embeds"], t, image_rotary_emb=rotary
                    )
                pred = transformer(
                    hidden_states=model_input,
                    encoder_hidden_states=inputs["embeds"],
                    timestep=t,
                    image_rotary_emb=rotary,
                    control_residuals=residuals,
                    return_dict=False,
                )[0]
                loss = torch.nn.functional.mse_loss(pred.float(), target.float())
                accelerator.backward(loss)
                optimizer_step(accelerator, optimizer, lr_scheduler, params, cfg["max_grad_norm"])
        step += 1
        if accelerator.is_main_process:
            progress.step()
        value = float(accelerator.gather(loss.detach()).mean())
        if not math.isfinite(value):
            raise FloatingPointError(f"training the {name}: loss is {value} at step {step}")
        losses.append((step, value, lr_scheduler.get_last_lr()[0]))
        if step % cfg["checkpoint_every"] == 0 or step == steps:
            # The losses before the checkpoint: a kill between the two leaves rows past the last
            # checkpoint, which the resumed run drops (``_read_losses``), never a checkpoint
            # whose rows are missing.
            if accelerator.is_main_process:
                _write_losses(work / "loss.csv", losses)
            _checkpoint(accelerator, work, step, cfg["keep_checkpoints"])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        progress.done()
        _write_losses(work / "loss.csv", losses)
        pipe.transformer = accelerator.unwrap_model(transformer)
        if controlnet is not None:
            pipe.controlnet = accelerator.unwrap_model(controlnet)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp)
        record = {
            "expert": name,
            "init": cfg["init"],
            "steps": steps,
            "samples": samples,
            "sample_kinds_this_job": dict(kinds),
            "prompts_dropped_this_job": dropped,
            "final_loss": losses[-1][1] if losses else None,
            "processes": accelerator.num_processes,
            "mixed_precision": precision,
            "config": cfg,
        }
        write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", tmp / "training.json")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        loss_curve(losses, f"{name}: training loss", work / "loss.png")
        log.info("%s: %d steps, final loss %.4f, written to %s", name, steps, losses[-1][1], out)
    return out


def _checkpoint(accelerator, work: Path, step: int, keep: int) -> None:
    final = work / f"checkpoint-{step:06d}"
    tmp = work / f"checkpoint-{step:06d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps({"step": step}), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoints(work)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _read_losses(path: Path, upto: int) -> list[tuple[int, float, float]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(int(r["step"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(fh)]
    return [r for r in rows if r[0] <= upto]


def _write_losses(path: Path, losses: list[tuple[int, float, float]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "lr"])
        writer.writerows(losses)
    os.replace(tmp, path)
