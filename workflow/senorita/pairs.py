"""Pairs, per task and shard: one (source, instruction, target) pair per drawn clip.

A shard's pair job is one ``PairJob`` (its inputs: the clip table, the task's config, the seed,
the tables the task reads, where to write). ``make_task_pairs(job)`` makes its pairs with the
stage the task registry names (``senorita.tasks``), each stage a class with one method,
``pair(clip, rng, src, tgt) -> Made``, that writes one clip's two files (or raises ``NoPair``):

- ``operator``: the clip is the target, the operator's output the source (``OperatorPairs``);
- ``control``: the clip and its control map (hard links, no model runs here; ``ControlPairs``);
- ``grounding``: the clip and one of its objects' mask video, white on black (``GroundingPairs``);
- ``expert``: a video expert's edit (``senorita.expert_tasks``, the one module that loads torch);
- ``reversed``: another task's pairs reversed (``senorita.reversed_pairs``).

Every stage's pairs come out of one loop (``make_pairs``, on the shard runner ``shards.run_shard``):
a seeded draw decides whether the clip gets a pair (``pair_draw``), the stage writes the two
files, an instruction is drawn from the task's templates, and the row is journaled so a killed
job resumes. Attribution (``VIDEO_FIELDS``) is copied from the clip's row into the pair's.

Files are laid out as in the released Señorita-2M: ``<pair_id>_org.mp4`` (source) beside
``<pair_id>.mp4`` (target), in ``<dataset>/<task>/<shard>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field, fields
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from senorita.atomic import link_or_copy
from senorita.attribution import VIDEO_FIELDS, attribution
from senorita.ids import derive_seed, shard_name, stable_hash
from senorita.instructions import InstructionError, draw_instruction
from senorita.provenance import code_version, model_tag, stage_provenance
from senorita.shards import Reject, run_shard
from senorita.tasks import get, operator_of
from senorita.video import VideoError, read_frames, write_frames

log = logging.getLogger(__name__)

# Attribution (attribution.VIDEO_FIELDS) is copied from the clip row into every pair row.
PAIR_COLUMNS = [
    "pair_id",
    "task",
    "instruction",
    "template_id",
    "source_path",
    "target_path",
    "clip_id",
    "video_id",
    "shard",
    "source_height",
    "source_width",
    "target_height",
    "target_width",
    "frames",
    "fps",
    "maker",
    "params",
    "seed",
    "code_version",
    *VIDEO_FIELDS,
]

# The shard tables a task may read (senorita.tasks.TABLES) -> the PairJob field holding each.
TABLE_FIELDS = {"masks": "masks", "control": "control", "captions": "captions", "llm": "answers"}


@dataclass(frozen=True)
class PairJob:
    """One task's pair job for one shard: everything it reads, and where it writes.

    The same object serves the language-model job of an expert task (``llm_answers``), which
    writes its answer cache to ``out`` and has no dataset or rejects.
    """

    task: str
    shard: int
    clips: Path  # the shard's clip table
    params: dict[str, Any]  # the config's tasks.<task>
    seed: int  # the run's seed (config seed)
    out: Path  # the shard's pair table (the llm job: its answer cache)
    dataset: Path | None = None  # the dataset root; pair files go to <dataset>/<task>/<shard>/
    rejects: Path | None = None  # the shard's pair rejects table
    encode: dict[str, Any] | None = None  # the config's encode section
    max_words: int | None = None  # the longest instruction allowed (config instructions)
    masks: Path | None = None  # the shard's mask table
    control: Path | None = None  # the shard's control-map table
    captions: Path | None = None  # the shard's caption table
    answers: Path | None = None  # the language model's answers (the llm job's cache)
    forward: Path | None = None  # the reversed task's pair table (reversed stage)
    experts: dict[str, Any] | None = None  # the config's experts section (expert stage)
    models: dict[str, Any] | None = None  # the config's models section (the llm job)
    videos: Path | None = None  # the shard's ingest table (the super-resolution stage)

    # CLI flags whose name differs from the field's.
    FLAGS: ClassVar[dict[str, str]] = {"answers": "cache"}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PairJob:
        """The job of a pair subcommand's arguments (a flag the subcommand lacks: None)."""
        return cls(
            **{f.name: getattr(args, cls.FLAGS.get(f.name, f.name), None) for f in fields(cls)}
        )

    @property
    def media(self) -> Path:
        """The folder of this shard's pair files."""
        return self.require("dataset").dataset / self.task / shard_name(self.shard)

    def require(self, *names: str) -> PairJob:
        """This job, checked to have ``names`` (fields); a ValueError names the missing flag."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            flags = ", ".join("--" + self.FLAGS.get(n, n).replace("_", "-") for n in missing)
            raise ValueError(f"task {self.task} shard {self.shard}: {flags} required")
        return self

    def require_tables(self, tables: tuple[str, ...]) -> PairJob:
        """This job, checked to have each of ``tables`` (senorita.tasks.TABLES) it reads."""
        return self.require(*(TABLE_FIELDS[t] for t in tables))


class NoPair(Reject):
    """A clip the stage cannot pair: recorded as a reject (or skipped when ``record`` is false;
    ``shards.Reject``)."""


@dataclass
class Made:
    """What a stage wrote for one pair: the fields only it knows."""

    source_shape: tuple[int, int]  # height, width
    target_shape: tuple[int, int]
    maker: str  # the row's "maker": what made the pair (operator:blur, expert:remover:<id>@...)
    params: dict[str, Any]
    slots: dict[str, str] = field(default_factory=dict)  # instruction template slots
    frames: int | None = None  # when not the clip's (an expert generates a set count)
    instruction: tuple[str, str] | None = None  # (text, template id) written by a model


class TaskPairs(Protocol):
    """How one pair stage makes one clip's pair (built from the job: ``cls(job)``)."""

    # What the shard table's provenance records besides the job's task, shard, params and seed.
    provenance: dict[str, Any]

    def pair(self, clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        """Write the pair's source ``src`` and target ``tgt`` from ``clip`` (its clip-table row),
        drawing from ``rng`` (the pair's generator); raise NoPair when the clip has none."""
        ...


# Pair stage (senorita.tasks.STAGES) -> "module:attribute" building its TaskPairs from a job,
# imported only by the job that runs it (the expert stage loads torch).
STAGE_PAIRS = {
    "operator": "senorita.pairs:OperatorPairs",
    "control": "senorita.pairs:ControlPairs",
    "grounding": "senorita.pairs:GroundingPairs",
    "expert": "senorita.expert_tasks:expert_pairs",
    "reversed": "senorita.reversed_pairs:ReversedPairs",
}


def stage_pairs(job: PairJob) -> TaskPairs:
    """The TaskPairs of ``job``'s task, as its registry entry's stage says."""
    module, _, name = STAGE_PAIRS[get(job.task).stage].partition(":")
    return getattr(import_module(module), name)(job)


def make_task_pairs(job: PairJob, stage: str | None = None) -> pd.DataFrame:
    """``job``'s pairs, made by its task's stage (a ValueError when that is not ``stage``, the
    subcommand's)."""
    task = get(job.task)
    if stage is not None and task.stage != stage:
        raise ValueError(
            f"task {task.id} is made by the {task.stage} stage, not {stage}: run "
            f"`senorita {task.stage}-pairs --task {task.id} ...`"
        )
    job.require("dataset", "rejects").require_tables(tuple(t for t in task.reads if t != "llm"))
    return make_pairs(job, stage_pairs(job))


def pair_draw(job: PairJob, clip_id: str) -> tuple[int, np.random.Generator] | None:
    """The pair's seed and generator, after the draw (its first) that gives the clip a pair of
    ``job.task``; None when it does not. A plan drawn from this generator is the pair job's."""
    seed = derive_seed(job.seed, job.task, clip_id)
    rng = np.random.default_rng(seed)
    if rng.random() >= job.params["clip_fraction"]:
        return None
    return seed, rng


def make_pairs(job: PairJob, stage: TaskPairs) -> pd.DataFrame:
    """The loop every stage's pairs come out of (``shards.run_shard``: journal, resume, rejects,
    progress, atomic finish, prune), one clip at a time: draw, make, instruct."""
    task, shard, dataset = job.task, job.shard, job.require("dataset", "rejects").dataset
    media = job.media
    media.mkdir(parents=True, exist_ok=True)

    def pair(clip: dict[str, Any]) -> dict[str, Any] | None:
        if (drawn := pair_draw(job, clip["clip_id"])) is None:
            return None  # not drawn for this task: no work, not part of the rate
        pair_seed, rng = drawn
        pair_id = stable_hash("pair", task, clip["clip_id"])
        src, tgt = media / f"{pair_id}_org.mp4", media / f"{pair_id}.mp4"
        made = stage.pair(clip, rng, src, tgt)
        # A slot filled from a model (a phrase) can make an instruction the dataset must not
        # carry: that pair is a reject (InstructionError), not a failed job.
        instruction, template_id = draw_instruction(task, rng, job.max_words, **made.slots)
        if made.instruction is not None:  # a model wrote one (checked where it was made)
            instruction, template_id = made.instruction
        return {
            "pair_id": pair_id,
            "task": task,
            "instruction": instruction,
            "template_id": template_id,
            "source_path": src.relative_to(dataset).as_posix(),
            "target_path": tgt.relative_to(dataset).as_posix(),
            "clip_id": clip["clip_id"],
            "video_id": clip["video_id"],
            "shard": shard,
            "source_height": int(made.source_shape[0]),
            "source_width": int(made.source_shape[1]),
            "target_height": int(made.target_shape[0]),
            "target_width": int(made.target_shape[1]),
            "frames": int(made.frames or clip["frames"]),
            "fps": float(clip["fps"]),
            "maker": made.maker,
            "params": json.dumps(made.params, sort_keys=True),
            "seed": pair_seed,
            "code_version": code_version(),
            **attribution(clip),
        }

    prov = stage_provenance(
        "pairs", task=task, shard=shard, params=job.params, seed=job.seed, **stage.provenance
    )
    return run_shard(
        f"pairs:{task}",
        shard,
        pd.read_parquet(job.clips),
        pair,
        out=job.out,
        rejects_out=job.rejects,
        columns=PAIR_COLUMNS,
        provenance=prov,
        files=lambda row: (dataset / row["source_path"], dataset / row["target_path"]),
        media=media,
        errors=(VideoError, Reject, InstructionError),
        label=f"pairs {task} {shard_name(shard)}",
    )


def encode_args(job: PairJob) -> dict[str, Any]:
    """The encoder settings of ``job``'s videos: the task's ``crf`` over the run's."""
    encode = job.require("encode").encode
    return {"crf": job.params.get("crf", encode["crf"]), "preset": encode["preset"]}


# -- the stages without a model ------------------------------------------------------------------


class OperatorPairs:
    """Operator tasks: the operator (the registry's ``operator``) makes the source from the clip,
    its parameters drawn per pair; the clip is the target."""

    def __init__(self, job: PairJob):
        self.job = job
        self.operator = operator_of(job.task)
        self.maker = f"operator:{self.operator.name}"
        self.provenance = {"encode": job.require("encode").encode, "maker": self.maker}

    def pair(self, clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        frames = read_frames(clip["path"])
        params = self.operator.draw(rng, self.job.params, frames.shape[1], frames.shape[2])
        source = self.operator(frames, params)
        write_frames(src, source, clip["fps"], **encode_args(self.job))
        link_or_copy(clip["path"], tgt)
        return Made(source.shape[1:3], frames.shape[1:3], self.maker, params)


class ControlPairs:
    """Detector tasks: the clip and its control map of the registry's ``control`` kind, the map
    the target (``map_is_target``: video -> map) or the source (map -> video). Both videos
    already exist; the pair files are hard links to them."""

    def __init__(self, job: PairJob):
        task = get(job.task)
        self.kind, self.map_is_target = task.control, task.map_is_target
        maps = pd.read_parquet(job.require("control").control)
        self.maps = maps[maps["kind"] == self.kind].set_index("clip_id")
        self.provenance: dict[str, Any] = {}

    def pair(self, clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        kind = self.kind
        if clip["clip_id"] not in self.maps.index:
            raise NoPair(f"no {kind} map for this clip (see the control stage's rejects)")
        cmap = self.maps.loc[clip["clip_id"]]
        clip_shape = (clip["height"], clip["width"])
        map_shape = (cmap["height"], cmap["width"])
        pairs = [(clip["path"], clip_shape), (cmap["path"], map_shape)]
        (source, source_shape), (target, target_shape) = (
            pairs if self.map_is_target else pairs[::-1]
        )
        link_or_copy(source, src)
        link_or_copy(target, tgt)
        params = json.loads(cmap["params"])
        maker = f"model:{kind}:{model_tag(params.get('model'), params.get('revision'))}"
        return Made(source_shape, target_shape, maker, {"kind": kind, **params})


class GroundingPairs:
    """Grounding: the clip, and the mask video of one of its objects (a seeded draw).

    Clips without a kept object make no pair and no pair reject: the masks stage recorded why.
    """

    def __init__(self, job: PairJob):
        self.job = job
        objects = pd.read_parquet(job.require("masks").masks)
        self.by_clip = {c: g.sort_values("object") for c, g in objects.groupby("clip_id")}
        self.provenance = {"encode": job.require("encode").encode, "maker": "grounding"}

    def pair(self, clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        from senorita.masks import load_masks

        if clip["clip_id"] not in self.by_clip:
            raise NoPair("no object found (see the masks stage's rejects)", record=False)
        choices = self.by_clip[clip["clip_id"]]
        obj = choices.iloc[int(rng.integers(len(choices)))]
        mask = load_masks(obj["mask_path"])[int(obj["object"])]
        video = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)
        write_frames(tgt, video, clip["fps"], **encode_args(self.job))
        link_or_copy(clip["path"], src)
        models = json.loads(obj["models"])
        maker = "model:grounding:" + "+".join(
            model_tag(models[f]["model"], models[f]["revision"]) for f in ("detector", "segmenter")
        )
        params = {
            "phrase": obj["phrase"],
            "object": int(obj["object"]),
            "box": [float(v) for v in obj["box"]],
            "score": float(obj["score"]),
            "key_frame": int(obj["key_frame"]),
            "area_mean": float(obj["area_mean"]),
            "mask_path": obj["mask_path"],
            "models": models,
        }
        shape = (int(obj["height"]), int(obj["width"]))
        return Made(shape, shape, maker, params, {"obj": obj["phrase"]})
