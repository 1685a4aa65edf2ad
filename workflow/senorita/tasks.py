"""The task registry: every task of the dataset in one place, and the only place task facts live.

A task says which pair stage makes it (``stage``) and with what: an operator (``operator``, a
``module:Class`` path, imported only by the job that runs it), a control-map kind (``control``), an
expert (``expert``) or the task whose pairs it reverses (``reverses``); which shard tables its pair
job reads (``reads``) and which control maps (``controls``); and its instruction templates. The
Snakemake rules, the pair jobs, the training views and the tests all read these fields.

Adding a task: one entry here (``register`` at run time does the same) and, for an operator task,
one operator file (README, "Adding a task").
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

# The pair stages, each one Snakemake rule and one ``senorita`` subcommand.
STAGES = ("operator", "control", "grounding", "expert", "reversed")
# Shard tables a pair job may read besides the clips and the videos.
TABLES = ("masks", "control", "captions", "llm")
# What every task of these stages reads (its rule has plain inputs, no function run per job);
# an expert task's reads are its own.
STAGE_READS = {"operator": (), "control": ("control",), "grounding": ("masks",), "reversed": ()}


@dataclass(frozen=True)
class Task:
    id: str
    number: int  # row in SPEC.md's table (a registered task: the next free number)
    stage: str  # the pair stage that makes it (STAGES)
    made_by: str  # in words, for the card and the README
    source: str  # what the pair's source video is
    target: str  # what the pair's target video is
    share: float  # fraction of the released Señorita-2M pairs (a sampling target)
    templates: tuple[str, ...]  # instruction templates; {obj}, {style} ... filled per pair
    reads: tuple[str, ...] = ()  # shard tables the pair job reads besides clips (TABLES)
    controls: tuple[str, ...] = ()  # control-map kinds the task needs (control stage's output)
    operator: str | None = None  # operator stage: "module:Class" making the source from the clip
    control: str | None = None  # control stage: the map kind paired with the clip
    map_is_target: bool = False  # control stage: video -> map (detection) or map -> video
    expert: str | None = None  # expert stage: config experts.<name>
    reverses: str | None = None  # reversed stage: the task whose pairs are reversed
    filter_kind: str = "restoration"  # the filter gates' group (config filters.tasks)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"task {self.id}: stage {self.stage!r} is not one of {STAGES}")
        if unknown := set(self.reads) - set(TABLES):
            raise ValueError(f"task {self.id}: reads unknown tables {sorted(unknown)}")
        required = {
            "operator": "operator",
            "control": "control",
            "expert": "expert",
            "reversed": "reverses",
        }.get(self.stage)
        if required and not getattr(self, required):
            raise ValueError(f"task {self.id}: a {self.stage} task names its {required}")
        if self.stage in STAGE_READS and tuple(self.reads) != STAGE_READS[self.stage]:
            raise ValueError(
                f"task {self.id}: a {self.stage} task reads {STAGE_READS[self.stage] or 'no table'}"
                f" (its stage's job), not {self.reads}"
            )

    @property
    def needs_masks(self) -> bool:
        return "masks" in self.reads


# fmt: off
TASKS: tuple[Task, ...] = (
    Task("object_addition", 1, "reversed", "remover expert, pair reversed",
         "object-removed video", "original", 0.266,
         ("Add {obj}.", "Insert {obj}.", "Put {obj} in the video.", "Add a {obj} to the scene."),
         reverses="object_removal", filter_kind="expert"),
    Task("object_removal", 2, "expert", "remover expert", "original", "object removed", 0.207,
         ("Remove the {obj}.", "Omit the {obj}.", "Wipe out the {obj}.", "Erase the {obj}.",
          "Eliminate the {obj}.", "Discard the {obj}."),
         reads=("masks",), expert="remover", filter_kind="expert"),
    Task("local_stylization", 3, "expert", "local stylizer", "original",
         "masked object restyled", 0.175,
         ("Make this {obj} {attribute}.", "Turn the {obj} {attribute}.",
          "Change the {obj} to {attribute}."),
         reads=("masks", "control", "llm"), controls=("hed", "canny", "depth"),
         expert="local_stylizer", filter_kind="expert"),
    Task("grounding", 4, "grounding", "Grounding DINO + SAM2", "original", "object mask video",
         0.110,
         ("Ground the {obj}.", "Segment the {obj}.", "Detect the {obj} mask.",
          "Find the {obj}."),
         reads=("masks",), filter_kind="grounding"),
    Task("object_swap", 5, "expert", "LLM + FLUX-Fill + inpainter expert", "original",
         "object replaced", 0.089,
         ("Swap the {obj} for {new}.", "Replace the {obj} with {new}.",
          "Transform the {obj} into {new}.", "Turn the {obj} into {new}."),
         reads=("masks", "captions", "llm"), expert="inpainter", filter_kind="expert"),
    Task("global_stylization", 6, "expert", "global stylizer", "original", "stylized", 0.031,
         ("Make it {style} style.", "Turn it into {style} style.", "Render it in {style} style.",
          "Apply {style} style."),
         reads=("control", "captions"), controls=("hed", "canny", "depth"),
         expert="global_stylizer", filter_kind="expert"),
    Task("outpainting", 7, "operator", "cut operator (border)", "cut video", "original", 0.020,
         ("Extend the video beyond its borders.", "Outpaint the video.",
          "Fill in the missing borders.", "Expand the frame.", "Complete the cut-off edges."),
         operator="senorita.operators.cut:BorderCut"),
    Task("inpainting", 8, "operator", "cut operator (hole)", "video with region cut out",
         "original", 0.012,
         ("Fill in the missing region.", "Inpaint the hole.", "Restore the cut-out area.",
          "Complete the missing part.", "Fill the black gap."),
         operator="senorita.operators.cut:HoleCut"),
    Task("colorization", 9, "operator", "grayscale operator", "gray", "colour", 0.007,
         ("Colorize the video.", "Add colour to the video.", "Make it colourful.",
          "Turn the gray video into colour.", "Colour this black and white video."),
         operator="senorita.operators.grayscale:Grayscale"),
    Task("canny_to_video", 10, "operator", "Canny detector", "edge video", "original", 0.011,
         ("Generate a video according to the canny edges.", "Canny to video.",
          "Create a video from the canny map.", "Render a video following these edges.",
          "Make a video from the edge map."),
         operator="senorita.operators.canny:Canny", filter_kind="map_to_video"),
    Task("depth_to_video", 11, "control", "depth estimator", "depth video", "original", 0.011,
         ("Generate a video according to the depth map.", "Depth to video.",
          "Create a video from the depth."),
         reads=("control",), controls=("depth",), control="depth", filter_kind="map_to_video"),
    Task("depth_detection", 12, "control", "depth estimator", "original", "depth video", 0.011,
         ("Estimate the depth.", "Predict the depth map.", "Extract depth."),
         reads=("control",), controls=("depth",), control="depth", map_is_target=True,
         filter_kind="detection"),
    Task("hed_to_video", 13, "control", "HED edge detector", "HED video", "original", 0.011,
         ("Generate a video according to the HED edges.", "HED to video.",
          "Create a video from the soft edges."),
         reads=("control",), controls=("hed",), control="hed", filter_kind="map_to_video"),
    Task("hed_detection", 14, "control", "HED edge detector", "original", "HED video", 0.011,
         ("Detect HED edges.", "Extract the HED map.", "Find the soft edges."),
         reads=("control",), controls=("hed",), control="hed", map_is_target=True,
         filter_kind="detection"),
    Task("scribble_to_video", 15, "control", "fake-scribble detector", "scribble video",
         "original", 0.011,
         ("Generate a video according to the scribble.", "Scribble to video.",
          "Create a video from the sketch."),
         reads=("control",), controls=("scribble",), control="scribble",
         filter_kind="map_to_video"),
    Task("scribble_detection", 16, "control", "fake-scribble detector", "original",
         "scribble video", 0.011,
         ("Draw a scribble of the video.", "Extract the scribble.", "Sketch the video."),
         reads=("control",), controls=("scribble",), control="scribble", map_is_target=True,
         filter_kind="detection"),
    Task("deblur", 17, "operator", "blur operator", "blurred", "original", 0.003,
         ("Deblur the video.", "Sharpen the video.", "Remove the blur.", "Make it sharp.",
          "Restore the blurry video.", "Unblur this video."),
         operator="senorita.operators.blur:Blur"),
    Task("upscale", 18, "operator", "downsize operator", "low-res", "original", 0.003,
         ("Upscale the video.", "Increase the resolution.", "Make it high resolution.",
          "Super-resolve the video.", "Enhance the video resolution."),
         operator="senorita.operators.downsize:Downsize"),
)
# fmt: on

TASKS_BY_ID: dict[str, Task] = {t.id: t for t in TASKS}
# Tasks registered at run time (``register``), after the built-in ones.
_REGISTERED: list[Task] = []


def register(task: Task) -> Task:
    """Add a task to the registry (a plug-in's entry; the built-in ones are listed above)."""
    if task.id in TASKS_BY_ID:
        raise ValueError(f"task {task.id!r} is already registered")
    TASKS_BY_ID[task.id] = task
    _REGISTERED.append(task)
    return task


def all_tasks() -> list[Task]:
    """Every registered task, built-in ones first, in registry order."""
    return [*TASKS, *_REGISTERED]


def task_ids(stage: str | None = None) -> list[str]:
    """Ids of every registered task (of one pair stage when ``stage`` is given)."""
    return [t.id for t in all_tasks() if stage is None or t.stage == stage]


def get(task_id: str) -> Task:
    """The registered task ``task_id``; a KeyError names the known ones."""
    try:
        return TASKS_BY_ID[task_id]
    except KeyError:
        raise KeyError(f"unknown task {task_id!r} (known: {', '.join(task_ids())})") from None


def operator_of(task_id: str):
    """The operator instance of an operator task (its module imported here, on first use)."""
    task = get(task_id)
    if task.operator is None:
        raise ValueError(f"task {task_id!r} is a {task.stage} task, not an operator task")
    module, _, name = task.operator.partition(":")
    return getattr(import_module(module), name)()


# What the language-model questions read of the config's experts section: the llm_answers job
# gets only these, so that changing another expert setting does not ask the model again.
LLM_EXPERT_KEYS = ("attributes", "swap_objects", "styles", "llm_instructions", "drop_static")


def asks_llm(task_id: str, experts_cfg: dict) -> bool:
    """Whether ``task_id``'s pairs need the language model's answers (its llm_answers job): the
    tasks that read its answers always, the other expert tasks for their instructions only
    (experts.llm_instructions)."""
    task = get(task_id)
    return "llm" in task.reads or (task.stage == "expert" and bool(experts_cfg["llm_instructions"]))


def enabled_tasks(task_config: dict[str, dict]) -> list[str]:
    """Ids of the tasks to build, in registry order (a task is on unless the config turns it
    off). Raises ValueError naming the field when the config names an unknown task, or enables a
    reversed task without the task it reverses."""
    if unknown := sorted(set(task_config) - set(TASKS_BY_ID)):
        raise ValueError(
            f"config tasks.{unknown[0]}: no such task (known: {', '.join(task_ids())})"
        )
    enabled = [t.id for t in all_tasks() if task_config.get(t.id, {}).get("enabled", True)]
    for tid in enabled:
        if (forward := get(tid).reverses) and forward not in enabled:
            raise ValueError(
                f"config tasks.{tid}.enabled: {tid} reverses the {forward} pairs; enable "
                f"tasks.{forward} too"
            )
    return enabled


# Modules registering tasks of their own (config ``plugins``), named in the environment so that
# every job's process (a local shell job, a SLURM job) imports them as the Snakefile did.
PLUGINS_ENV = "SENORITA_PLUGINS"


def load_plugins(modules: Iterable[str]) -> None:
    """Import task plug-ins (each calls ``register``) and name them for the jobs' processes."""
    names = [m for m in modules if m]
    for name in names:
        import_module(name)
    known = [m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m]
    if names:
        os.environ[PLUGINS_ENV] = ",".join(dict.fromkeys([*known, *names]))


load_plugins(os.environ.get(PLUGINS_ENV, "").split(","))
