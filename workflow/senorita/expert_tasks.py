"""Stage 6, per task and shard: pairs made by the video experts, one class per expert task.

- ``ObjectRemoval`` (the remover): erases one object per clip (a seeded draw among the clip's
  kept objects, see the masks stage); source the clip, target the clip without it.
- ``LocalStylization`` (the local stylizer): restyles one object with an attribute the language
  model proposes, steered by the clip's HED, Canny and depth maps masked to the object.
- ``ObjectSwap`` (the inpainter): the language model proposes a new object (given the object and
  the clip's caption), FLUX.1-Fill paints it into frame 0 under the dilated mask, and the
  inpainter propagates it through the clip.
- ``GlobalStylization`` (the global stylizer): a style drawn from ``experts.styles``; Stable
  Diffusion 1.5 with a ControlNet restyles frame 0 from its control map, and the global stylizer
  propagates it with the caption plus the style as prompt.

Object addition (the removal pairs reversed) is ``senorita.reversed_pairs``: no model runs.

Each class says what its task draws per pair (``plan``: the object, the seed, the style), what it
asks the language model (``question``, ``edit_words``) and how it edits one clip (``edit``: the
frame-0 edit and the pipeline's own inputs); ``ExpertPairs.pair`` does the rest, the same for
all: fit the clip and the mask, run the expert, write the files, record the row's params. The
shard tables it reads are the task registry's ``reads``; the expert, its ``expert``.

The language model (``models.llm``, 16 GB in half precision) has a job of its own per task and
shard, run before the expert job (``senorita.llm_answers``): it draws each pair's plan exactly as
the expert job will (the same ``plan`` after the same ``pairs.pair_draw``), asks its questions
(``ExpertPairs.language_answers``, the one place they are asked) and caches the validated answers
in one JSON-lines file. The expert job only reads that file (``read_answers``), so no expert job
holds the language model; a missing answer stops it, naming the clip. A failed answer falls back
to a seeded draw from a configured list, and the row says which it was.

The expert generates at ``experts.frames`` × ``height`` × ``width`` (the paper's 33 × 336 × 592):
the clip's first frames, resized, are the pair's source (re-encoded at that size) so source and
target align pixel for pixel. The object's mask is dilated by ``experts.dilate_px``; with
``experts.paste_back`` the pixels outside it are the source's. Every row records the expert's
checkpoint and revision, prompts, negative prompt, guidance, steps and seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from senorita.instructions import indefinite_article
from senorita.masks import dilate, load_masks
from senorita.pairs import Made, NoPair, PairJob, encode_args
from senorita.tasks import asks_llm, get
from senorita.video import read_frames, write_frames

log = logging.getLogger(__name__)

STYLES = Path(__file__).with_name("styles.txt")
INSTRUCTION_QUESTION = (
    "Write one short imperative instruction, at most {words} words, asking a video editor to "
    "{edit}. Answer with the instruction only."
)
ATTRIBUTE_QUESTION = (
    "Propose one new colour, material or texture for a {obj} in a video, as a short adjective "
    "phrase (one to three words). Answer with the phrase only."
)
SWAP_QUESTION = (
    "A video shows: {caption}. Name one different everyday object that could stand where the "
    "{obj} is, about the same size. Answer with a short noun phrase only."
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


def stylizer_slots(attribute: str, obj: str) -> dict[str, str]:
    """The local stylizer's prompt slots: ``{article}`` ("a" or "an" for what follows it, as the
    training prompts and the paper have one: "It's an orange car."), ``{attribute}``, ``{obj}``."""
    return {"obj": obj, "attribute": attribute, "article": indefinite_article(f"{attribute} {obj}")}


def stylizer_prompt(template: str, attribute: str, obj: str) -> str:
    """``template`` filled with the local stylizer's slots (``stylizer_slots``)."""
    return template.format(**stylizer_slots(attribute, obj))


# -- what both jobs draw and ask, the same way ---------------------------------------------------


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


@dataclass(frozen=True)
class Question:
    """A question whose answer fills an instruction slot (the attribute, the new object)."""

    slot: str  # the template slot its answer fills
    what: str  # its cache key's kind: keys are <clip>/<what>/<object phrase>
    text: str  # the question
    fallback: list[str]  # the configured choices a refused answer falls back to


# ask(clip_id, what, question, check, fallback, seed) -> (answer, source)
Ask = Callable[
    [str, str, str, Callable[[str], "str | None"], "list[str] | None", int],
    "tuple[str | None, str]",
]


@dataclass
class Answers:
    """The language model's answers for one pair."""

    slots: dict[str, tuple[str, str]] = field(default_factory=dict)  # slot -> (answer, source)
    instruction: tuple[str, str] | None = None  # (text, "<task>/llm"), or None: a template


def read_answers(task: str, cache: Path | None) -> Ask:
    """``ask`` for the expert job: answers from the language-model job's cache, never a model.
    A missing one is an error naming the clip (that job did not run, or ran on other inputs).
    """
    from senorita.answer_cache import AnswerCache

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


# -- the expert tasks ----------------------------------------------------------------------------


@dataclass
class Edit:
    """One pair's edit in the making: what ``edit`` reads, and the slots and params it fills."""

    plan: Plan
    answers: Answers
    video: np.ndarray  # the source: the clip's first frames at the expert's size
    mask: np.ndarray | None  # the object's dilated mask at that size
    slots: dict[str, str]  # instruction template slots
    params: dict[str, Any]  # the row's params


class ExpertPairs:
    """An expert task's pairs (``TaskPairs``): what it draws, asks and edits. One subclass per
    expert task; ``expert`` is the config's ``experts.<name>`` (the registry's ``expert``)."""

    expert: ClassVar[str]

    def __init__(self, job: PairJob):
        self.job = job
        self.task = get(job.task)
        if self.task.expert != self.expert:
            raise ValueError(f"task {job.task}: made by {self.task.expert}, not {self.expert}")
        self.experts = job.require("experts").experts
        # The language-model job passes only what its questions read (llm_answers.EXPERT_KEYS):
        # the expert's own settings and its working size are the expert job's.
        self.cfg = self.experts.get(self.expert, {})
        self.n, self.height, self.width = (
            self.experts.get(k) for k in ("frames", "height", "width")
        )
        self.objects: dict[str, pd.DataFrame] = {}
        self.maps: dict[tuple[str, str], str] = {}
        self.captions: dict[str, str] = {}
        if job.masks is not None:
            objects = pd.read_parquet(job.masks)
            self.objects = {c: g.sort_values("object") for c, g in objects.groupby("clip_id")}
        if job.control is not None:
            rows = pd.read_parquet(job.control).to_dict("records")
            self.maps = {(r["clip_id"], r["kind"]): r["path"] for r in rows}
        if job.captions is not None:
            pairs = pd.read_parquet(job.captions)[["clip_id", "caption"]].to_numpy()
            self.captions = {c: t for c, t in pairs if isinstance(t, str)}
        # The original videos, for the super-resolution stage's re-cut sources.
        self.videos: dict[str, str] = {}
        if job.videos is not None:
            table = pd.read_parquet(job.videos, columns=["video_id", "path"])
            self.videos = dict(zip(table["video_id"], table["path"], strict=True))
        self.provenance = {"encode": job.encode, "expert": self.expert, "experts": self.experts}
        # The language model's answers: the llm job's cache (that job passes its own ``ask``).
        cache = job.answers if asks_llm(job.task, self.experts) else None
        self.ask = read_answers(job.task, cache)
        self._loaded: dict[str, Any] = {}  # models, loaded on the first clip that needs them

    # -- the draws and the questions (the llm job's too) ----------------------------------------

    def plan(self, clip: dict[str, Any], rng: np.random.Generator) -> Plan:
        """The pair's draws, in the order the expert job has always made them: the object (a
        task that reads masks), the generator seed, then the task's own (``draw``). A static
        clip is no pair where ``experts.drop_static`` says so (before any draw)."""
        clip_id = clip["clip_id"]
        if self.experts.get("drop_static") and clip.get("static"):
            raise NoPair(f"static clip: motion {clip['motion']:g} px/frame (experts.drop_static)")
        obj = None
        if self.task.needs_masks:
            if clip_id not in self.objects:
                raise NoPair("no object found (see the masks stage's rejects)", record=False)
            choices = self.objects[clip_id]
            obj = choices.iloc[int(rng.integers(len(choices)))].to_dict()
        plan = Plan(clip_id, int(rng.integers(2**31)), obj)
        self.draw(plan, rng)
        return plan

    def draw(self, plan: Plan, rng: np.random.Generator) -> None:
        """The task's own draws after the seed (the style of global stylization)."""

    def question(self, plan: Plan) -> Question | None:
        """The language-model question whose answer fills a slot, if the task has one."""
        return None

    def edit_words(self, slots: dict[str, str]) -> tuple[str, list[str]]:
        """The edit in words (for the instruction question) and the words it must name."""
        raise NotImplementedError

    def language_answers(self, plan: Plan, ask: Ask) -> Answers:
        """The answers a pair needs, through ``ask``: the language-model job asks and caches, the
        expert job reads the cache. One method for both, so both use the same questions and keys.
        """
        from senorita.models.llm import validate, validate_instruction

        answers = Answers()
        slots = {"obj": plan.phrase, "style": plan.style}
        if (q := self.question(plan)) is not None:
            obj = plan.phrase
            choices = [f for f in q.fallback if f != obj] or q.fallback
            check = lambda a: validate(a, obj)  # noqa: E731
            answer = ask(plan.clip_id, f"{q.what}/{obj}", q.text, check, choices, plan.seed)
            answers.slots[q.slot] = answer
            slots[q.slot] = answer[0]
        if self.experts["llm_instructions"]:
            limit = self.job.max_words or 12
            edit, required = self.edit_words(slots)
            question = INSTRUCTION_QUESTION.format(edit=edit, words=min(limit, 10))
            check = lambda a: validate_instruction(a, required, limit)  # noqa: E731
            text, _ = ask(plan.clip_id, f"instruction/{edit}", question, check, None, plan.seed)
            answers.instruction = (text, f"{self.task.id}/llm") if text else None
        return answers

    # -- the models -----------------------------------------------------------------------------

    def pipeline(self):
        """The expert's pipeline and ModelSpec (loaded once, on the first clip that needs it)."""
        if "pipe" not in self._loaded:
            from senorita.experts import load_expert

            self._loaded["pipe"] = load_expert(self.expert, self.experts)
        return self._loaded["pipe"]

    def frame_editor(self):
        """The image model that edits frame 0 (loaded once)."""
        if "editor" not in self._loaded:
            self._loaded["editor"] = self.load_frame_editor()
        return self._loaded["editor"]

    def load_frame_editor(self):
        raise NotImplementedError(f"the {self.expert} expert has no frame editor")

    def control_videos(self, clip_id: str) -> list[np.ndarray]:
        """The clip's control maps the task reads (the registry's ``controls``) at the expert's
        size, in the ControlNet's order (its ``control_video``)."""
        from senorita.experts.local_stylizer import CONTROL_KINDS

        videos = {}
        for kind in self.task.controls:
            if (clip_id, kind) not in self.maps:
                raise NoPair(f"no {kind} map for this clip (see the control stage's rejects)")
            path = self.maps[clip_id, kind]
            videos[kind] = fit_video(read_frames(path), self.n, self.height, self.width)
        return [videos[kind] for kind in CONTROL_KINDS]

    # -- one clip -------------------------------------------------------------------------------

    def edit(self, e: Edit) -> tuple[dict[str, Any], dict[str, str]]:
        """The pipeline's own inputs for this pair (besides prompts, guidance, steps, generator
        and paste-back) and the prompt templates' slots; fills ``e.slots`` and ``e.params``."""
        raise NotImplementedError

    def pair(self, clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        from senorita.experts.pipeline import cpu_generator

        n, height, width, cfg = self.n, self.height, self.width, self.cfg
        plan = self.plan(clip, rng)
        # Before any model loads: a missing answer stops the job here.
        answers = self.language_answers(plan, self.ask)
        params: dict[str, Any] = {}
        slots: dict[str, str] = {}
        mask = None
        if plan.obj is not None:
            slots["obj"] = plan.phrase
            index = int(plan.obj["object"])
            mask = load_masks(plan.obj["mask_path"])[index]
            mask = dilate(fit_mask(mask, n, height, width), self.experts["dilate_px"])
            params.update(
                phrase=plan.phrase,
                object=index,
                mask_path=plan.obj["mask_path"],
                dilate_px=self.experts["dilate_px"],
            )
        frames = fit_video(read_frames(clip["path"]), n, height, width)
        run = {"guidance_scale": cfg["guidance"], "num_inference_steps": cfg["steps"]}
        if mask is not None:  # the pixels outside the object's mask can be the source's
            run["paste_back"] = self.experts["paste_back"]
        pipe, spec = self.pipeline()
        inputs, text = self.edit(Edit(plan, answers, frames, mask, slots, params))
        prompt = cfg["prompt"].format(**text)
        negative_prompt = cfg["negative_prompt"].format(**text)
        result = pipe(
            **inputs,
            prompt=prompt,
            negative_prompt=negative_prompt,
            generator=cpu_generator(plan.seed),
            **run,
        )
        source, target, size = frames, result.frames, (height, width)
        if self.experts.get("super_resolution", {}).get("enabled"):
            # The expert's own output, kept for the report (working size beside lifted).
            working = self.job.out.with_suffix("") / f"{tgt.stem}.working.mp4"
            write_frames(working, target, clip["fps"], **encode_args(self.job))
            source, target, lift = self.lift(clip, plan.seed, target, mask, run)
            size = source.shape[1:3]
            params.update(lift, working_target=working.as_posix())
        write_frames(src, source, clip["fps"], **encode_args(self.job))
        write_frames(tgt, target, clip["fps"], **encode_args(self.job))
        prov = spec.provenance()
        params.update(
            expert=self.expert,
            checkpoint=prov["model"],
            revision=prov["revision"],
            dtype=prov["dtype"],
            prompt=prompt,
            negative_prompt=negative_prompt,
            guidance=cfg["guidance"],
            steps=cfg["steps"],
            seed=plan.seed,
            paste_back=run.get("paste_back", False),
            frames=n,
        )
        maker = f"expert:{self.expert}:{spec.tag}"
        return Made(size, size, maker, params, slots, n, answers.instruction)

    # -- the super-resolution stage (experts.super_resolution) ----------------------------------

    def super_resolver(self):
        """The super-resolver's pipeline and ModelSpec (loaded once)."""
        if "super_resolver" not in self._loaded:
            from senorita.experts import load_expert

            self._loaded["super_resolver"] = load_expert("super_resolver", self.experts)
        return self._loaded["super_resolver"]

    def lift(
        self,
        clip: dict[str, Any],
        seed: int,
        target: np.ndarray,
        mask: np.ndarray | None,
        run: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The pair at the super-resolver's output size: the source re-cut from the original
        video (the same frames), the target lifted by the super-resolver, and, with paste-back,
        every pixel outside the dilated mask (resized) the re-cut source's, so only the edited
        region is generated. Returns them and what the row records."""
        from senorita.experts.pipeline import cpu_generator
        from senorita.recut import recut

        cfg = self.experts["super_resolver"]
        height, width, n = cfg["height"], cfg["width"], len(target)
        if clip["video_id"] not in self.videos:
            raise NoPair(f"video {clip['video_id']} is not in this shard's ingest table")
        source = recut(self.videos[clip["video_id"]], clip, height, width, frames=n)
        pipe, spec = self.super_resolver()
        caption = self.captions.get(clip["clip_id"], "")
        result = pipe(
            video=target,
            prompt=caption,
            negative_prompt=cfg["negative_prompt"],
            height=height,
            width=width,
            guidance_scale=cfg["guidance"],
            num_inference_steps=cfg["steps"],
            generator=cpu_generator(seed),
            tile=tuple(cfg["tile"]) if cfg["tile"] else None,
            tile_overlap=cfg["tile_overlap"],
        )
        lifted = result.frames
        if mask is not None and run.get("paste_back"):
            lifted = pipe.paste_back(lifted, source, fit_mask(mask, n, height, width))
        prov = spec.provenance()
        record = {
            "working_height": int(target.shape[1]),
            "working_width": int(target.shape[2]),
            "output_height": height,
            "output_width": width,
            "super_resolver": prov["model"],
            "super_resolver_revision": prov["revision"],
            "super_resolver_dtype": prov["dtype"],
            "super_resolver_steps": cfg["steps"],
            "super_resolver_guidance": cfg["guidance"],
            "super_resolver_seed": seed,
            "super_resolver_tile": cfg["tile"],
            "super_resolver_prompt": caption,
        }
        return source, lifted, record


class ObjectRemoval(ExpertPairs):
    """The remover erases the object (prompt "Remove {obj}" against "Generate {obj}")."""

    expert = "remover"

    def edit_words(self, slots):
        return f"remove the {slots['obj']}", [slots["obj"]]

    def edit(self, e):
        return {"video": e.video, "mask_video": e.mask}, {"obj": e.plan.phrase}


class LocalStylization(ExpertPairs):
    """The local stylizer gives the object an attribute the language model proposes, steered by
    the clip's control maps masked to the object."""

    expert = "local_stylizer"

    def question(self, plan):
        text = ATTRIBUTE_QUESTION.format(obj=plan.phrase)
        return Question("attribute", "attribute", text, self.experts["attributes"])

    def edit_words(self, slots):
        return f"make the {slots['obj']} {slots['attribute']}", [slots["obj"]]

    def edit(self, e):
        attr, source = e.answers.slots["attribute"]
        e.slots["attribute"] = attr
        e.params.update(attribute=attr, attribute_source=source)
        inputs = {
            "video": e.video,
            "mask_video": e.mask,
            "control_video": self.control_videos(e.plan.clip_id),
            "controlnet_conditioning_scale": self.cfg["conditioning_scale"],
        }
        return inputs, stylizer_slots(attr, e.plan.phrase)


class ObjectSwap(ExpertPairs):
    """FLUX-Fill paints the new object the language model proposes into frame 0; the inpainter
    propagates it through the clip."""

    expert = "inpainter"

    def question(self, plan):
        caption = self.captions.get(plan.clip_id) or "(no caption)"
        text = SWAP_QUESTION.format(obj=plan.phrase, caption=caption)
        return Question("new", "swap", text, self.experts["swap_objects"])

    def edit_words(self, slots):
        return f"replace the {slots['obj']} with {slots['new']}", [slots["obj"], slots["new"]]

    def load_frame_editor(self):
        from senorita.models.frame_editors import FrameFiller

        return FrameFiller.load(self.cfg["frame_filler"])

    def edit(self, e):
        from senorita.experts.pipeline import cpu_generator

        new, source = e.answers.slots["new"]
        e.slots["new"] = new
        filler = self.cfg["frame_filler"]
        prompt = filler["prompt"].format(new=new, article=indefinite_article(new))
        first = self.frame_editor()(
            image=e.video[0],
            mask_image=e.mask[0],
            prompt=prompt,
            generator=cpu_generator(e.plan.seed),
        )
        e.params.update(
            new_object=new,
            new_object_source=source,
            frame_filler=filler["id"],
            frame_filler_prompt=prompt,
        )
        inputs = {"video": e.video, "mask_video": e.mask, "image": first}
        return inputs, {"obj": e.plan.phrase, "new_obj": new}


class GlobalStylization(ExpertPairs):
    """A style drawn per pair; SD 1.5 with a ControlNet restyles frame 0 from its control map and
    the global stylizer propagates it, prompted with the caption plus the style."""

    expert = "global_stylizer"

    def __init__(self, job: PairJob):
        super().__init__(job)
        self.styles = load_styles(self.experts["styles"])

    def draw(self, plan, rng):
        if not self.captions.get(plan.clip_id):
            raise NoPair("no caption for this clip (see the captions stage's rejects)")
        plan.style = self.styles[int(rng.integers(len(self.styles)))]

    def edit_words(self, slots):
        return f"render the whole video in {slots['style']} style", [slots["style"]]

    def load_frame_editor(self):
        from senorita.models.frame_editors import FrameStylizer

        return FrameStylizer.load(self.cfg["frame_stylizer"])

    def edit(self, e):
        from senorita.experts.local_stylizer import CONTROL_KINDS
        from senorita.experts.pipeline import cpu_generator

        caption, style = self.captions[e.plan.clip_id], e.plan.style
        text = {"caption": caption.rstrip(". "), "style": style}
        e.slots["style"] = style
        stylizer = self.cfg["frame_stylizer"]
        maps = self.control_videos(e.plan.clip_id)
        guide = maps[CONTROL_KINDS.index(stylizer["control_kind"])]
        first = self.frame_editor()(
            image=guide[0],
            prompt=stylizer["prompt"].format(**text),
            generator=cpu_generator(e.plan.seed),
        )
        e.params.update(
            style=style,
            caption=caption,
            frame_stylizer=stylizer["id"],
            frame_stylizer_controlnet=stylizer["controlnet"],
        )
        inputs = {
            "video": e.video,
            "image": first,
            "control_video": maps,
            "controlnet_conditioning_scale": self.cfg["conditioning_scale"],
        }
        return inputs, text


# Expert (config experts.<name>, the registry's ``expert``) -> the class making its task's pairs.
EXPERT_PAIRS: dict[str, type[ExpertPairs]] = {
    cls.expert: cls for cls in (ObjectRemoval, LocalStylization, ObjectSwap, GlobalStylization)
}


def expert_task(job: PairJob) -> ExpertPairs:
    """The expert task of ``job`` (its draws and questions; the llm job uses no more)."""
    return EXPERT_PAIRS[get(job.task).expert](job)


def expert_pairs(job: PairJob) -> ExpertPairs:
    """The expert stage's TaskPairs (``pairs.STAGE_PAIRS``): the task's pairs for ``job``."""
    job.require("encode")
    return expert_task(job)
