"""Stage 6, per task and shard: pairs made by the video experts, and their reversals.

- ``object_removal``: the remover erases one object per clip (a seeded draw among the clip's
  kept objects, see the masks stage); source the clip, target the clip without it.
- ``local_stylization``: the local stylizer restyles one object with an attribute the language
  model proposes, steered by the clip's HED, Canny and depth maps masked to the object.
- ``object_swap``: the language model proposes a new object (given the object and the clip's
  caption), FLUX.1-Fill paints it into frame 0 under the dilated mask, and the inpainter
  propagates it through the clip.
- ``global_stylization``: a style drawn from ``experts.styles``; Stable Diffusion 1.5 with a
  ControlNet restyles frame 0 from its control map, and the global stylizer propagates it with
  the caption plus the style as prompt.
- ``object_addition``: the removal pairs reversed: the same files (hard links), no model run,
  its own instructions.

Language model answers are validated, seeded and cached per clip (``models.llm``); a failed
answer falls back to a seeded draw from a configured list, and the row says which it was.

The expert generates at ``experts.frames`` × ``height`` × ``width`` (the paper's 33 × 336 × 592):
the clip's first frames, resized, are the pair's source (re-encoded at that size) so source and
target align pixel for pixel. The object's mask is dilated by ``experts.dilate_px``; with
``experts.paste_back`` the pixels outside it are the source's. Every row records the expert's
checkpoint and revision, prompts, negative prompt, guidance, steps and seed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from senorita.atomic import link_or_copy
from senorita.masks import dilate, load_masks
from senorita.models import ModelSpec
from senorita.pairs import Made, NoPair, make_pairs
from senorita.video import read_frames, write_frames

log = logging.getLogger(__name__)

# Expert-made tasks and the expert that makes each.
EXPERT_OF = {
    "object_removal": "remover",
    "local_stylization": "local_stylizer",
    "object_swap": "inpainter",
    "global_stylization": "global_stylizer",
}
# Tasks made by reversing another task's pairs.
REVERSED = {"object_addition": "object_removal"}

SWAP_QUESTION = (
    "A video shows: {caption}. Name one different everyday object that could stand where the "
    "{obj} is, about the same size. Answer with a short noun phrase only."
)
STYLES = Path(__file__).with_name("styles.txt")
INSTRUCTION_QUESTION = (
    "Write one short imperative instruction, at most {words} words, asking a video editor to "
    "{edit}. Answer with the instruction only."
)
# Per expert: what the edit is (for the instruction question) and the words it must name.
EDITS = {
    "remover": lambda s: (f"remove the {s['obj']}", [s["obj"]]),
    "local_stylizer": lambda s: (f"make the {s['obj']} {s['attribute']}", [s["obj"]]),
    "inpainter": lambda s: (f"replace the {s['obj']} with {s['new']}", [s["obj"], s["new"]]),
    "global_stylizer": lambda s: (f"render the whole video in {s['style']} style", [s["style"]]),
}
ATTRIBUTE_QUESTION = (
    "Propose one new colour, material or texture for a {obj} in a video, as a short adjective "
    "phrase (one to three words). Answer with the phrase only."
)


def fit_video(frames: np.ndarray, n: int, height: int, width: int) -> np.ndarray:
    """The first ``n`` frames resized to height × width (area interpolation)."""
    if len(frames) < n:
        raise NoPair(f"clip has {len(frames)} frames, the expert needs {n}")
    frames = frames[:n]
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


def fit_mask(mask: np.ndarray, n: int, height: int, width: int) -> np.ndarray:
    mask = mask[:n].astype(np.uint8)
    if mask.shape[1:3] != (height, width):
        mask = np.stack(
            [cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in mask]
        )
    return mask.astype(bool)


@dataclass
class Edit:
    """One pair's edit in the making: what every expert's function reads and fills."""

    clip_id: str
    frames: np.ndarray
    mask: np.ndarray | None
    phrase: str | None
    rng: np.random.Generator
    seed: int
    run: dict[str, Any]  # the pipeline's guidance, steps, seed, paste-back
    slots: dict[str, str]  # instruction template slots (filled)
    params: dict[str, Any]  # the row's params (filled)
    pipe: Any


def load_styles(styles: list[str] | str | None) -> list[str]:
    """The global stylizer's styles: a list, a file of one style per line, or the built-in list."""
    if isinstance(styles, list):
        return styles
    path = Path(styles) if styles else STYLES
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    found = [ln for ln in lines if ln and not ln.startswith("#")]
    if not found:
        raise ValueError(f"config experts.styles: {path} lists no style")
    return found


def load_expert(name: str, cfg: dict[str, Any]):
    """An expert pipeline from its configured checkpoint, placed and with memory savers set."""
    from senorita.experts import PIPELINES

    spec = ModelSpec.from_config(cfg, name)
    pipe = PIPELINES[name].from_pretrained(
        spec.id,
        revision=None if spec.is_local else spec.revision,
        dtype=spec.torch_dtype(),
    )
    if cfg["cpu_offload"] and spec.torch_device().type == "cuda":
        pipe.enable_model_cpu_offload(device=spec.torch_device())
    else:
        pipe.to(spec.torch_device())
    if cfg["vae_tiling"]:
        pipe.vae.enable_tiling()
    if cfg["vae_slicing"]:
        pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    log.info("%s: loaded %s (%s on %s)", name, spec.id, spec.torch_dtype(), spec.torch_device())
    return pipe, spec


def make_expert_pairs(
    task: str,
    shard: int,
    clips: Path,
    videos: Path,
    masks: Path | None,
    control: Path | None,
    captions: Path | None,
    task_cfg: dict[str, Any],
    experts_cfg: dict[str, Any],
    models: dict[str, Any],
    seed: int,
    encode: dict[str, Any],
    dataset: Path,
    out: Path,
    rejects_out: Path,
    cache: Path,
    max_words: int | None = None,
) -> pd.DataFrame:
    name = EXPERT_OF[task]
    expert_cfg = experts_cfg[name]
    n, height, width = experts_cfg["frames"], experts_cfg["height"], experts_cfg["width"]
    by_clip: dict[str, pd.DataFrame] = {}
    if masks is not None:
        objects = pd.read_parquet(masks)
        by_clip = {cid: g.sort_values("object") for cid, g in objects.groupby("clip_id")}
    maps: dict[tuple[str, str], str] = {}
    if control is not None:
        table = pd.read_parquet(control)
        maps = {(r["clip_id"], r["kind"]): r["path"] for r in table.to_dict("records")}
    caption_of: dict[str, str] = {}
    if captions is not None:
        caption_of = dict(pd.read_parquet(captions)[["clip_id", "caption"]].to_numpy())
    styles = load_styles(experts_cfg["styles"]) if name == "global_stylizer" else []
    state: dict[str, Any] = {}  # models, loaded on the first clip that needs them

    def expert():
        if "pipe" not in state:
            state["pipe"], state["spec"] = load_expert(name, experts_cfg)
        return state["pipe"], state["spec"]

    def frame_editor():
        from senorita.models.frame_editors import FrameFiller, FrameStylizer

        if "editor" not in state:
            if name == "inpainter":
                state["editor"] = FrameFiller.load(expert_cfg["frame_filler"])
            else:
                state["editor"] = FrameStylizer.load(expert_cfg["frame_stylizer"])
        return state["editor"]

    def ask(clip_id: str, what: str, question: str, check, fallback: list[str] | None, s: int):
        from senorita.models.llm import AnswerCache, ChatLLM, propose

        if "cache" not in state:
            state["cache"] = AnswerCache(cache)
        key = f"{clip_id}/{what}"
        if state["cache"].get(key) is None and "llm" not in state:
            state["llm"] = ChatLLM.load(ModelSpec.from_config(models, "llm"))
        return propose(state.get("llm"), state["cache"], key, question, check, fallback, s)

    def phrase_for(clip_id: str, what: str, obj: str, question: str, fallback, s: int):
        from senorita.models.llm import validate

        choices = [f for f in fallback if f != obj] or fallback
        return ask(clip_id, f"{what}/{obj}", question, lambda a: validate(a, obj), choices, s)

    def instruction_for(clip_id: str, edit: str, required: list[str], s: int):
        """The language model's instruction for the pair, or None (the template then)."""
        from senorita.models.llm import validate_instruction

        if not experts_cfg["llm_instructions"]:
            return None
        limit = max_words or 12
        question = INSTRUCTION_QUESTION.format(edit=edit, words=min(limit, 10))
        check = lambda a: validate_instruction(a, required, limit)  # noqa: E731
        text, _ = ask(clip_id, f"instruction/{edit}", question, check, None, s)
        return (text, f"{task}/llm") if text else None

    def control_videos(clip_id: str) -> list[np.ndarray]:
        videos = []
        for kind in ("hed", "canny", "depth"):
            if (clip_id, kind) not in maps:
                raise NoPair(f"no {kind} map for this clip (see the control stage's rejects)")
            videos.append(fit_video(read_frames(maps[clip_id, kind]), n, height, width))
        return videos

    # One function per expert: the question it asks, its frame-0 edit and its pipeline call.
    # Each fills the pair's template slots and params and returns (result, prompt slots).
    def remove(e: Edit):
        text = {"obj": e.phrase}
        prompts = {k: expert_cfg[k] for k in ("prompt", "negative_prompt")}
        return e.pipe(e.frames, e.mask, e.phrase, **prompts, **e.run), text

    def restyle_object(e: Edit):
        question = ATTRIBUTE_QUESTION.format(obj=e.phrase)
        attr, source = phrase_for(
            e.clip_id, "attribute", e.phrase, question, experts_cfg["attributes"], e.seed
        )
        e.slots["attribute"] = attr
        e.params.update(attribute=attr, attribute_source=source)
        hed, canny, depth = control_videos(e.clip_id)
        result = e.pipe(
            e.frames,
            e.mask,
            e.phrase,
            attr,
            hed,
            canny,
            depth,
            prompt=expert_cfg["prompt"],
            negative_prompt=expert_cfg["negative_prompt"],
            conditioning_scale=expert_cfg["conditioning_scale"],
            **e.run,
        )
        return result, {"obj": e.phrase, "attribute": attr}

    def swap(e: Edit):
        caption = caption_of.get(e.clip_id, "")
        question = SWAP_QUESTION.format(obj=e.phrase, caption=caption or "(no caption)")
        new, source = phrase_for(
            e.clip_id, "swap", e.phrase, question, experts_cfg["swap_objects"], e.seed
        )
        e.slots["new"] = new
        filler = expert_cfg["frame_filler"]
        prompt = filler["prompt"].format(new=new)
        first = frame_editor()(e.frames[0], e.mask[0], prompt, e.seed)
        e.params.update(
            new_object=new,
            new_object_source=source,
            frame_filler=filler["id"],
            frame_filler_prompt=prompt,
        )
        result = e.pipe(
            e.frames,
            e.mask,
            first,
            new,
            prompt=expert_cfg["prompt"],
            negative_prompt=expert_cfg["negative_prompt"],
            **e.run,
        )
        return result, {"obj": e.phrase, "new_obj": new}

    def restyle_video(e: Edit):
        caption = caption_of.get(e.clip_id)
        if not caption:
            raise NoPair("no caption for this clip (see the captions stage's rejects)")
        style = styles[int(e.rng.integers(len(styles)))]
        text = {"caption": caption.rstrip(". "), "style": style}
        e.slots["style"] = style
        stylizer = expert_cfg["frame_stylizer"]
        hed, canny, depth = control_videos(e.clip_id)
        guide = {"hed": hed, "canny": canny, "depth": depth}[stylizer["control_kind"]]
        first = frame_editor()(guide[0], stylizer["prompt"].format(**text), e.seed)
        e.params.update(
            style=style,
            caption=caption,
            frame_stylizer=stylizer["id"],
            frame_stylizer_controlnet=stylizer["controlnet"],
        )
        result = e.pipe(
            e.frames,
            first,
            caption,
            style,
            hed,
            canny,
            depth,
            prompt=expert_cfg["prompt"],
            negative_prompt=expert_cfg["negative_prompt"],
            conditioning_scale=expert_cfg["conditioning_scale"],
            **e.run,
        )
        return result, text

    edit_with = {
        "remover": remove,
        "local_stylizer": restyle_object,
        "inpainter": swap,
        "global_stylizer": restyle_video,
    }[name]

    def make(clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        clip_id = clip["clip_id"]
        params: dict[str, Any] = {}
        slots: dict[str, str] = {}
        phrase = mask = None
        if name != "global_stylizer":
            if clip_id not in by_clip:
                raise NoPair("no object found (see the masks stage's rejects)", record=False)
            choices = by_clip[clip_id]
            obj = choices.iloc[int(rng.integers(len(choices)))]
            phrase = obj["phrase"]
            slots["obj"] = phrase
            mask = load_masks(obj["mask_path"])[int(obj["object"])]
            mask = dilate(fit_mask(mask, n, height, width), experts_cfg["dilate_px"])
            params.update(
                phrase=phrase,
                object=int(obj["object"]),
                mask_path=obj["mask_path"],
                dilate_px=experts_cfg["dilate_px"],
            )
        frames = fit_video(read_frames(clip["path"]), n, height, width)
        gen_seed = int(rng.integers(2**31))
        run = {
            "guidance_scale": expert_cfg["guidance"],
            "num_inference_steps": expert_cfg["steps"],
            "seed": gen_seed,
        }
        if name != "global_stylizer":
            run["paste_back"] = experts_cfg["paste_back"]
        pipe, spec = expert()
        edit = Edit(clip_id, frames, mask, phrase, rng, gen_seed, run, slots, params, pipe)
        result, text = edit_with(edit)
        crf = task_cfg.get("crf", encode["crf"])
        write_frames(src, frames, clip["fps"], crf=crf, preset=encode["preset"])
        write_frames(tgt, result.frames, clip["fps"], crf=crf, preset=encode["preset"])
        prov = spec.provenance()
        params.update(
            expert=name,
            checkpoint=prov["model"],
            revision=prov["revision"],
            dtype=prov["dtype"],
            prompt=expert_cfg["prompt"].format(**text),
            negative_prompt=expert_cfg["negative_prompt"].format(**text),
            guidance=expert_cfg["guidance"],
            steps=expert_cfg["steps"],
            seed=gen_seed,
            paste_back=run.get("paste_back", False),
            frames=n,
        )
        maker = f"expert:{name}:{prov['model']}@{prov['revision'] or 'local'}"
        edit, required = EDITS[name](slots)
        instruction = instruction_for(clip_id, edit, required, gen_seed)
        return Made((height, width), (height, width), maker, params, slots, n, instruction)

    return make_pairs(
        task,
        shard,
        clips,
        videos,
        task_cfg,
        seed,
        dataset,
        out,
        rejects_out,
        make,
        {"encode": encode, "expert": name, "experts": experts_cfg},
        max_words=max_words,
    )


def make_reversed_pairs(
    task: str,
    shard: int,
    clips: Path,
    videos: Path,
    forward: Path,
    task_cfg: dict[str, Any],
    seed: int,
    dataset: Path,
    out: Path,
    rejects_out: Path,
    max_words: int | None = None,
) -> pd.DataFrame:
    """``task``'s pairs as another task's pairs reversed: the same files, new instructions."""
    rows = {r["clip_id"]: r for r in pd.read_parquet(forward).to_dict("records")}

    def make(clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        if clip["clip_id"] not in rows:
            raise NoPair(f"no {REVERSED[task]} pair for this clip", record=False)
        row = rows[clip["clip_id"]]
        link_or_copy(dataset / row["target_path"], src)
        link_or_copy(dataset / row["source_path"], tgt)
        params = {**json.loads(row["params"]), "reversed_from": row["pair_id"]}
        return Made(
            (row["target_height"], row["target_width"]),
            (row["source_height"], row["source_width"]),
            f"reversed:{row['maker']}",
            params,
            {"obj": params["phrase"]},
            frames=int(row["frames"]),
        )

    return make_pairs(
        task,
        shard,
        clips,
        videos,
        task_cfg,
        seed,
        dataset,
        out,
        rejects_out,
        make,
        {"reversed_from": REVERSED[task]},
        max_words=max_words,
    )
