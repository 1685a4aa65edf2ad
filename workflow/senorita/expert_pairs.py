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

The language model (``models.llm``, 16 GB in half precision) has a job of its own per task and
shard, run before the expert job (``llm_answers``): it draws each pair's plan (object, seed,
style) exactly as the expert job will, asks its questions (attribute, new object, instruction)
and caches the validated answers in one JSON-lines file. The expert job only reads that file,
so no expert job holds the language model; a missing answer stops it, naming the clip. A failed
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from senorita.atomic import link_or_copy, write_text
from senorita.checkpoints import asks_llm
from senorita.ids import derive_seed
from senorita.instructions import indefinite_article
from senorita.masks import dilate, load_masks
from senorita.models import ModelSpec
from senorita.pairs import Made, NoPair, make_pairs
from senorita.progress import Progress
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


# -- what both jobs draw and ask, the same way ---------------------------------------------------


def drawn_clips(
    task: str, clips: Path, task_cfg: dict[str, Any], seed: int
) -> list[tuple[dict[str, Any], np.random.Generator]]:
    """The clips ``make_pairs`` gives a ``task`` pair, each with the pair's generator after that
    draw (its first), so a plan drawn here is the one the expert job draws."""
    drawn = []
    for clip in pd.read_parquet(clips).to_dict("records"):
        rng = np.random.default_rng(derive_seed(seed, task, clip["clip_id"]))
        if rng.random() < task_cfg["clip_fraction"]:
            drawn.append((clip, rng))
    return drawn


@dataclass
class Plan:
    """A pair's seeded draws, made before any model runs: the object (its mask table row), the
    generator seed and, for global stylization, the style."""

    clip_id: str
    seed: int
    obj: dict[str, Any] | None = None
    style: str | None = None

    @property
    def phrase(self) -> str | None:
        return None if self.obj is None else self.obj["phrase"]


@dataclass
class ShardTables:
    """What an expert task reads per clip: objects (masks), control maps, captions, styles."""

    objects: dict[str, pd.DataFrame] = field(default_factory=dict)
    maps: dict[tuple[str, str], str] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    styles: list[str] = field(default_factory=list)

    @classmethod
    def read(
        cls,
        name: str,
        masks: Path | None,
        control: Path | None,
        captions: Path | None,
        experts_cfg: dict[str, Any],
    ) -> ShardTables:
        tables = cls()
        if masks is not None:
            objects = pd.read_parquet(masks)
            tables.objects = {c: g.sort_values("object") for c, g in objects.groupby("clip_id")}
        if control is not None:
            rows = pd.read_parquet(control).to_dict("records")
            tables.maps = {(r["clip_id"], r["kind"]): r["path"] for r in rows}
        if captions is not None:
            pairs = pd.read_parquet(captions)[["clip_id", "caption"]].to_numpy()
            tables.captions = {c: t for c, t in pairs if isinstance(t, str)}
        if name == "global_stylizer":
            tables.styles = load_styles(experts_cfg["styles"])
        return tables

    def plan(self, name: str, clip_id: str, rng: np.random.Generator) -> Plan:
        """The pair's draws, in the order the expert job has always made them."""
        obj = style = None
        if name != "global_stylizer":
            if clip_id not in self.objects:
                raise NoPair("no object found (see the masks stage's rejects)", record=False)
            choices = self.objects[clip_id]
            obj = choices.iloc[int(rng.integers(len(choices)))].to_dict()
        seed = int(rng.integers(2**31))
        if name == "global_stylizer":
            if not self.captions.get(clip_id):
                raise NoPair("no caption for this clip (see the captions stage's rejects)")
            style = self.styles[int(rng.integers(len(self.styles)))]
        return Plan(clip_id, seed, obj, style)


# ask(clip_id, what, question, check, fallback, seed) -> (answer, source)
Ask = Callable[
    [str, str, str, Callable[[str], "str | None"], "list[str] | None", int],
    "tuple[str | None, str]",
]


@dataclass
class Answers:
    """The language model's answers for one pair, each (answer, source)."""

    attribute: tuple[str, str] | None = None
    new: tuple[str, str] | None = None
    instruction: tuple[str, str] | None = None  # (text, "<task>/llm"), or None: a template


def language_answers(
    task: str,
    plan: Plan,
    tables: ShardTables,
    experts_cfg: dict[str, Any],
    max_words: int | None,
    ask: Ask,
) -> Answers:
    """The answers a pair needs, through ``ask``: the language-model job asks and caches, the
    expert job reads the cache. One function for both, so both use the same questions and keys.
    """
    from senorita.models.llm import validate, validate_instruction

    name = EXPERT_OF[task]
    answers = Answers()
    slots = {"obj": plan.phrase, "style": plan.style}

    def phrase(what: str, question: str, fallback: list[str]) -> tuple[str, str]:
        obj = plan.phrase
        choices = [f for f in fallback if f != obj] or fallback
        check = lambda a: validate(a, obj)  # noqa: E731
        return ask(plan.clip_id, f"{what}/{obj}", question, check, choices, plan.seed)

    if name == "local_stylizer":
        question = ATTRIBUTE_QUESTION.format(obj=plan.phrase)
        answers.attribute = phrase("attribute", question, experts_cfg["attributes"])
        slots["attribute"] = answers.attribute[0]
    elif name == "inpainter":
        caption = tables.captions.get(plan.clip_id) or "(no caption)"
        question = SWAP_QUESTION.format(obj=plan.phrase, caption=caption)
        answers.new = phrase("swap", question, experts_cfg["swap_objects"])
        slots["new"] = answers.new[0]
    if experts_cfg["llm_instructions"]:
        limit = max_words or 12
        edit, required = EDITS[name](slots)
        question = INSTRUCTION_QUESTION.format(edit=edit, words=min(limit, 10))
        check = lambda a: validate_instruction(a, required, limit)  # noqa: E731
        text, _ = ask(plan.clip_id, f"instruction/{edit}", question, check, None, plan.seed)
        answers.instruction = (text, f"{task}/llm") if text else None
    return answers


def llm_answers(
    task: str,
    shard: int,
    clips: Path,
    masks: Path | None,
    captions: Path | None,
    task_cfg: dict[str, Any],
    experts_cfg: dict[str, Any],
    models: dict[str, Any],
    seed: int,
    out: Path,
    max_words: int | None = None,
) -> int:
    """Ask the language model every question of one expert task's shard; cache the answers in
    ``out`` (JSON lines) for the expert job. Returns the number of answers.

    Resumable: answers are appended to ``<out>.part`` as they come (a killed job keeps them, and
    Snakemake does not delete that file), and ``out`` is written atomically at the end. A
    question already answered (in ``.part`` or a previous ``out``) is not asked again; the model
    is loaded only when one is not.
    """
    from senorita.models.llm import AnswerCache, ChatLLM, propose

    name = EXPERT_OF[task]
    tables = ShardTables.read(name, masks, None, captions, experts_cfg)
    part = out.with_name(out.name + ".part")
    cache = AnswerCache(part)
    if out.exists():  # a rerun by hand: what the last run answered stands
        for key, entry in AnswerCache(out).answers.items():
            if cache.get(key) is None:
                cache.put(key, {k: v for k, v in entry.items() if k != "key"})
    state: dict[str, Any] = {"asked": 0}

    def ask(clip_id, what, question, check, fallback, s):
        key = f"{clip_id}/{what}"
        if cache.get(key) is None:
            if "llm" not in state:
                state["llm"] = ChatLLM.load(ModelSpec.from_config(models, "llm"))
            state["asked"] += 1
        return propose(state.get("llm"), cache, key, question, check, fallback, s)

    drawn = drawn_clips(task, clips, task_cfg, seed)
    progress = Progress(f"llm {task} {shard:05d}", total=len(drawn), unit="clips")
    for clip, rng in drawn:
        asked = state["asked"]
        try:
            plan = tables.plan(name, clip["clip_id"], rng)
        except NoPair:  # the expert job records why; nothing to ask
            progress.skip()
            continue
        language_answers(task, plan, tables, experts_cfg, max_words, ask)
        if state["asked"] > asked:
            progress.step()
        else:
            progress.skip()
    progress.done()
    entries = [json.dumps(e, sort_keys=True) + "\n" for e in cache.answers.values()]
    write_text("".join(entries), out)
    part.unlink(missing_ok=True)
    log.info(
        "llm %s shard %d: %d answers (%d asked now)", task, shard, len(entries), state["asked"]
    )
    return len(entries)


def read_answers(task: str, cache: Path | None) -> Ask:
    """``ask`` for the expert job: answers from the language-model job's cache, never a model.
    A missing one is an error naming the clip (that job did not run, or ran on other inputs).
    """
    from senorita.models.llm import AnswerCache

    how = (
        f"run the llm_answers job of {task} first (`snakemake` does; by hand: "
        f"`senorita llm-answers --task {task} ...`) with the same clips, masks, seed and config"
    )
    answers = AnswerCache(cache) if cache is not None and cache.exists() else None

    def ask(clip_id, what, question, check, fallback, seed):
        hit = answers.get(f"{clip_id}/{what}") if answers is not None else None
        if hit is None:
            where = cache if cache is not None else "no --cache given"
            raise ValueError(
                f"clip {clip_id}: no language-model answer for {what!r} in {where}: {how}"
            )
        return hit["answer"], hit["source"]

    return ask


# -- the expert job ------------------------------------------------------------------------------


@dataclass
class Edit:
    """One pair's edit in the making: what every expert's function reads and fills."""

    plan: Plan
    answers: Answers
    frames: np.ndarray
    mask: np.ndarray | None
    run: dict[str, Any]  # the pipeline's guidance, steps, seed, paste-back
    slots: dict[str, str]  # instruction template slots (filled)
    params: dict[str, Any]  # the row's params (filled)
    pipe: Any


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
    seed: int,
    encode: dict[str, Any],
    dataset: Path,
    out: Path,
    rejects_out: Path,
    cache: Path | None,
    max_words: int | None = None,
) -> pd.DataFrame:
    """One expert task's pairs for one shard. The language model's answers come from ``cache``
    (written by ``llm_answers``); this job never loads the language model."""
    name = EXPERT_OF[task]
    expert_cfg = experts_cfg[name]
    n, height, width = experts_cfg["frames"], experts_cfg["height"], experts_cfg["width"]
    tables = ShardTables.read(name, masks, control, captions, experts_cfg)
    answers_of = read_answers(task, cache if asks_llm(task, experts_cfg) else None)
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

    def control_videos(clip_id: str) -> list[np.ndarray]:
        videos = []
        for kind in ("hed", "canny", "depth"):
            if (clip_id, kind) not in tables.maps:
                raise NoPair(f"no {kind} map for this clip (see the control stage's rejects)")
            videos.append(fit_video(read_frames(tables.maps[clip_id, kind]), n, height, width))
        return videos

    # One function per expert: its frame-0 edit and its pipeline call. Each fills the pair's
    # template slots and params and returns (result, prompt slots).
    def remove(e: Edit):
        text = {"obj": e.plan.phrase}
        prompts = {k: expert_cfg[k] for k in ("prompt", "negative_prompt")}
        return e.pipe(e.frames, e.mask, e.plan.phrase, **prompts, **e.run), text

    def restyle_object(e: Edit):
        attr, source = e.answers.attribute
        e.slots["attribute"] = attr
        e.params.update(attribute=attr, attribute_source=source)
        hed, canny, depth = control_videos(e.plan.clip_id)
        result = e.pipe(
            e.frames,
            e.mask,
            e.plan.phrase,
            attr,
            hed,
            canny,
            depth,
            prompt=expert_cfg["prompt"],
            negative_prompt=expert_cfg["negative_prompt"],
            conditioning_scale=expert_cfg["conditioning_scale"],
            **e.run,
        )
        text = {"obj": e.plan.phrase, "attribute": attr, "article": indefinite_article(attr)}
        return result, text

    def swap(e: Edit):
        new, source = e.answers.new
        e.slots["new"] = new
        filler = expert_cfg["frame_filler"]
        prompt = filler["prompt"].format(new=new, article=indefinite_article(new))
        first = frame_editor()(e.frames[0], e.mask[0], prompt, e.plan.seed)
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
        return result, {"obj": e.plan.phrase, "new_obj": new}

    def restyle_video(e: Edit):
        caption, style = tables.captions[e.plan.clip_id], e.plan.style
        text = {"caption": caption.rstrip(". "), "style": style}
        e.slots["style"] = style
        stylizer = expert_cfg["frame_stylizer"]
        hed, canny, depth = control_videos(e.plan.clip_id)
        guide = {"hed": hed, "canny": canny, "depth": depth}[stylizer["control_kind"]]
        first = frame_editor()(guide[0], stylizer["prompt"].format(**text), e.plan.seed)
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
        plan = tables.plan(name, clip["clip_id"], rng)
        # Before any model loads: a missing answer stops the job here.
        answers = language_answers(task, plan, tables, experts_cfg, max_words, answers_of)
        params: dict[str, Any] = {}
        slots: dict[str, str] = {}
        mask = None
        if plan.obj is not None:
            slots["obj"] = plan.phrase
            index = int(plan.obj["object"])
            mask = load_masks(plan.obj["mask_path"])[index]
            mask = dilate(fit_mask(mask, n, height, width), experts_cfg["dilate_px"])
            params.update(
                phrase=plan.phrase,
                object=index,
                mask_path=plan.obj["mask_path"],
                dilate_px=experts_cfg["dilate_px"],
            )
        frames = fit_video(read_frames(clip["path"]), n, height, width)
        run = {
            "guidance_scale": expert_cfg["guidance"],
            "num_inference_steps": expert_cfg["steps"],
            "seed": plan.seed,
        }
        if name != "global_stylizer":
            run["paste_back"] = experts_cfg["paste_back"]
        pipe, spec = expert()
        result, text = edit_with(Edit(plan, answers, frames, mask, run, slots, params, pipe))
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
            seed=plan.seed,
            paste_back=run.get("paste_back", False),
            frames=n,
        )
        maker = f"expert:{name}:{prov['model']}@{prov['revision'] or 'local'}"
        return Made((height, width), (height, width), maker, params, slots, n, answers.instruction)

    # make_pairs logs the job's progress lines (senorita.progress), journal resumes included.
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
