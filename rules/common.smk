import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from senorita.checkpoints import hub_token_problem
from senorita.config import config_errors, fill_registered
from senorita.ids import shard_name
from senorita.models import families_for
from senorita import snakemake_fixes
from senorita.tasks import (
    LLM_EXPERT_KEYS,
    all_tasks,
    asks_llm,
    enabled_tasks,
    get,
    load_plugins,
)

min_version("9.0")
# Flaws of the pinned Snakemake that cost a full-scale run dearly (senorita/snakemake_fixes.py):
# its scheduler's wake-ups multiplying with finished jobs, its SLURM group check walking every
# ancestor of every group member, function signatures read once per job and a job's shell
# command formatted three times each time it is listed.
snakemake_fixes.apply()


configfile: Path(workflow.basedir) / "config" / "config.yaml"


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
if problems := config_errors(config, SCHEMA):
    raise WorkflowError("invalid config:\n  " + "\n  ".join(problems))
validate(config, SCHEMA)  # fills in the schema's defaults
try:
    load_plugins(config["plugins"])  # tasks registered outside this repository
except ImportError as err:
    raise WorkflowError(f"config plugins: {err}") from None
fill_registered(config)  # and a registered task's (senorita.tasks.register)
try:
    TASKS = enabled_tasks(config["tasks"])
except ValueError as err:
    raise WorkflowError(str(err)) from None

RESULTS = config["paths"]["results"]
DATASET = config["paths"]["dataset"]
LOGS = config["paths"]["logs"]
SHARDS = [shard_name(i) for i in range(config["shards"])]
# Everything below about tasks comes from the task registry (senorita/tasks.py).
# The language-model answers job runs for these (its own job, before the expert job).
LLM_TASKS = [t for t in TASKS if asks_llm(t, config["experts"])]
LLM_MODEL = {k: v for k, v in config["models"]["llm"].items() if k != "resources"}
# The masks stage runs when an enabled task reads masks.
NEEDS_MASKS = any(get(t).needs_masks for t in TASKS)
MASK_FAMILIES = ["vlm", "detector", "segmenter"]
# Control-map kinds the enabled tasks need, and the model families that make them.
CONTROL_KINDS = sorted({k for t in TASKS for k in get(t).controls})
CONTROL_FAMILIES = families_for(CONTROL_KINDS)

# Paths that gather rules expand over all shards, named once here. Gather rules use these plain
# patterns rather than rules.<name>.output: Snakemake hashes a rule-output list once per file in
# it (quadratic in the shard count), which at 2,000 shards would dominate DAG planning.
CATALOGUE = f"{RESULTS}/sources/catalogue.parquet"
VIDEOS = f"{RESULTS}/ingest/{{shard}}.parquet"
INGEST_REJECTS = f"{RESULTS}/ingest/{{shard}}.rejects.parquet"
CLIPS = f"{RESULTS}/clips/{{shard}}.parquet"
DUPLICATES = f"{RESULTS}/dedup/duplicates.parquet"
CLIP_REJECTS = f"{RESULTS}/clips/{{shard}}.rejects.parquet"
PAIRS = f"{RESULTS}/pairs/{{task}}/{{shard}}.parquet"
PAIR_REJECTS = f"{RESULTS}/pairs/{{task}}/{{shard}}.rejects.parquet"
MANIFEST = f"{DATASET}/{{task}}/manifest.parquet"
CONTROL = f"{RESULTS}/control/{{shard}}.parquet"
CONTROL_REJECTS = f"{RESULTS}/control/{{shard}}.rejects.parquet"
TINY_MODELS = f"{RESULTS}/models/tiny"
CAPTIONS = f"{RESULTS}/captions/{{shard}}.parquet"
CAPTION_REJECTS = f"{RESULTS}/captions/{{shard}}.rejects.parquet"
MASKS = f"{RESULTS}/masks/{{shard}}.parquet"
MASK_REJECTS = f"{RESULTS}/masks/{{shard}}.rejects.parquet"
EXPERT_CHECK = f"{RESULTS}/experts/{{expert}}.checkpoint.json"
LLM_CACHE = f"{RESULTS}/llm/{{task}}/{{shard}}.jsonl"
TRAINED = f"{RESULTS}/training/{{expert}}/final"
TRAINING = f"{RESULTS}/training/{{expert}}/work"
# The experts the registry's tasks name, in registry order (each trainable on its own), and the
# super-resolver, which lifts their pairs (experts.super_resolution).
EXPERTS = [*dict.fromkeys(t.expert for t in all_tasks() if t.expert), "super_resolver"]
SUPER_RESOLUTION = config["experts"]["super_resolution"]["enabled"]
FILTER_SCORES = f"{RESULTS}/filters/{{task}}/scores.parquet"
JUDGE_SCORES = f"{RESULTS}/filters/{{task}}/judge.parquet"
# The VLM judge's job per task (filters.judge); its bounds are in filters.tasks.<task>.
JUDGE = config["filters"]["judge"]


wildcard_constraints:
    shard=r"\d{5}",
    task="|".join(TASKS) or "no-task",


def tasks_of(stage):
    """The enabled tasks one pair stage makes, as a wildcard constraint (a rule per stage)."""
    return "|".join(t for t in TASKS if get(t).stage == stage) or "no-task"


# A pair job's tables beyond the clips, by the registry's `reads`: the pattern and the flag of
# the pair subcommands that takes it.
PAIR_TABLES = {
    "masks": (MASKS, "--masks"),
    "control": (CONTROL, "--control"),
    "captions": (CAPTIONS, "--captions"),
    "llm": (LLM_CACHE, "--cache"),
    "videos": (VIDEOS, "--videos"),
}


def get_pair_inputs(wildcards):
    """An expert pair job's inputs: the shard's clips, the tables its task reads (the language
    model's answers when it asks one) and its expert's checkpoint check."""
    task = get(wildcards.task)
    reads = [r for r in task.reads if r != "llm"]
    if wildcards.task in LLM_TASKS:
        reads.append("llm")
    if SUPER_RESOLUTION:  # the original videos to re-cut, the captions as prompts
        reads += ["videos"] + (["captions"] if config["captions"]["enabled"] else [])
    inputs = {"clips": CLIPS, **{r: PAIR_TABLES[r][0] for r in dict.fromkeys(reads)}}
    inputs["checkpoint"] = EXPERT_CHECK.format(expert=task.expert)
    if SUPER_RESOLUTION:
        inputs["super_resolver"] = EXPERT_CHECK.format(expert="super_resolver")
    return inputs


def get_forward_pairs(wildcards):
    """The pairs a reversed task reverses (the registry's `reverses`), same shard."""
    return PAIRS.replace("{task}", get(wildcards.task).reverses)


def get_llm_inputs(wildcards):
    """The language-model answers job's inputs: the clips and what its questions read."""
    task = get(wildcards.task)
    inputs = {"clips": CLIPS}
    inputs.update(
        {r: PAIR_TABLES[r][0] for r in ("masks", "captions") if r in task.reads}
    )
    return inputs


def table_flags(wildcards, input):
    """The optional table flags of a pair or answers job (--masks ... --cache ...)."""
    return " ".join(
        f"{flag} {getattr(input, name)}"
        for name, (_, flag) in PAIR_TABLES.items()
        if name in input.keys()
    )


def task_params(wildcards):
    """The task's config (tasks.<id>) as JSON: a pair job's --params."""
    return as_json(config["tasks"][wildcards.task])


def manifest_thresholds(wildcards):
    """A task's bounds (filters.tasks.<task>) as JSON, without the judge's when it is off."""
    bounds = config["filters"]["tasks"][wildcards.task]
    if not JUDGE["enabled"]:
        bounds = {k: v for k, v in bounds.items() if "_judge_" not in k}
    return as_json(bounds)


def judge_flags(wildcards, input):
    """The manifest job's judge flags: its verdicts when the judge runs, and whether it gates."""
    flags = f" --verdicts {input.verdicts}" if JUDGE["enabled"] else ""
    return flags + ("" if JUDGE["gate"] else " --no-judge-gate")


def expert_of(wildcards):
    """The expert an expert task's job runs (the registry's `expert`)."""
    return get(wildcards.task).expert


def expert_resource(key):
    """A resource of an expert job, from its expert's config (experts.<name>.resources)."""
    return lambda wc: config["experts"][expert_of(wc)]["resources"][key]


def as_json(value):
    """A config slice as compact JSON, for a stage's --params (and Snakemake's params trigger)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def download_retry(wildcards):
    """The ingest jobs' `retry` parameter: the generation of the shard's pending-downloads
    record, which a job that left downloads for later bumps, so the next run reruns it.
    """
    from senorita.sources.pexels import pending_generation

    path = Path(RESULTS) / "sources" / "pending" / f"{wildcards.shard}.json"
    return pending_generation(path) if path.exists() else 0


# FLUX.1-Fill-dev and Llama 3 are gated on the hub: without a token their first job would fail
# hours in. Said now, before any job starts (only for enabled tasks that load a gated hub id).
if problem := hub_token_problem(config, TASKS):
    raise WorkflowError(problem)

# The Pexels key: PEXELS_API_KEY, or PEXELS_API_KEY_FILE naming a file only its owner can read;
# never the config or a command line. Checked in the main process only: the catalogue (the one
# job that uses it) is a local rule, and jobs on a cluster re-parse this file without a key.
# A SLURM controller stores each batch job's environment on its disk, and the slurm plugin
# submits with --export=ALL from this process's environment, so the key is taken out of the
# process environment (os.unsetenv): sbatch and every other child spawned with the inherited
# environment lacks it, while os.environ keeps it for local shell jobs, which Snakemake starts
# with env=dict(os.environ). tests/test_slurm.py greps SLURM's state for it.
if config["source"]["kind"] == "pexels" and workflow.is_main_process:
    from senorita.sources.pexels_api import KEY_ENV, KeyFileError, api_key

    try:
        if not api_key():
            raise WorkflowError(
                "config source.kind is 'pexels' but the environment variable PEXELS_API_KEY is "
                "not set. Get a key at https://www.pexels.com/api/ and `export "
                "PEXELS_API_KEY=...` before running, or put it in a file only you can read and "
                "`export PEXELS_API_KEY_FILE=/path/to/it` (never in the config)."
            )
    except KeyFileError as err:
        raise WorkflowError(str(err)) from None
    if KEY_ENV in os.environ:
        os.unsetenv(KEY_ENV)


def tiny_model_inputs(families):
    """The tiny-model folder, when a model the job loads lives in it (the embedded default)."""
    return _tiny_inside([config["models"][f]["id"] for f in families])


def expert_inputs(wildcards):
    """What an expert's checkpoint check waits for: this run's training output when the id
    points at it, and the tiny-model folder when the checkpoint or its frame-0 editor is there.
    """
    cfg = config["experts"][wildcards.expert]
    trained = TRAINED.format(expert=wildcards.expert)
    own = [trained] if cfg["id"] and os.path.normpath(cfg["id"]) == trained else []
    editors = [cfg[k]["id"] for k in ("frame_filler", "frame_stylizer") if k in cfg]
    return own + _tiny_inside([cfg["id"], *editors])


def _tiny_inside(ids):
    inside = os.path.normpath(TINY_MODELS) + os.sep
    paths = [os.path.normpath(i) + os.sep for i in ids if i]
    return [TINY_MODELS] if any(p.startswith(inside) for p in paths) else []


def gpus(families):
    """GPUs a model job asks for: one unless every model it loads is pinned to the CPU."""
    return int(any(config["models"][f]["device"] != "cpu" for f in families))


def training_tables(expert):
    """The per-shard tables an expert's training view reads, by kind."""
    from senorita.training.views import patterns_for

    return patterns_for(expert, RESULTS)


def expert_tasks(wildcards):
    """The enabled tasks an expert makes pairs for, comma-separated (its checkpoint check); the
    super-resolver lifts every expert task's."""
    if wildcards.expert == "super_resolver":
        return ",".join(t for t in TASKS if get(t).stage == "expert")
    return ",".join(t for t in TASKS if get(t).expert == wildcards.expert)


def launcher(gpus):
    """The training command: accelerate launch with one process per GPU when there are several."""
    if gpus > 1:
        return (
            f"accelerate launch --num_processes {gpus} --num_machines 1 -m senorita.cli"
        )
    return "senorita"


def card_waits_for():
    """The shard tables the card job must list as inputs: only those no manifest waits for.

    The card reads every shard's ingest, clip and reject tables through the patterns in its
    params. Most are made beside a table a manifest already waits for, by the same job: every pair
    job reads its shard's clips, the clips job its videos, and each of these
    jobs writes its rejects beside its table. Listing them all again, 26 files per shard with
    every task on (52,000 at 2,000 shards), changed neither the order nor what reruns, and cost
    about 7% of a dry run (parsing them, finding their producers, listing them).
    """
    reads = {r for t in TASKS for r in get(t).reads}
    tables = []
    if not TASKS:  # no manifest waits for anything
        tables += [VIDEOS, CLIPS, INGEST_REJECTS, CLIP_REJECTS]
    if CONTROL_KINDS and "control" not in reads:
        tables.append(CONTROL_REJECTS)
    if NEEDS_MASKS and "masks" not in reads:
        tables.append(MASK_REJECTS)
    if config["captions"]["enabled"] and "captions" not in reads:
        tables.append(CAPTION_REJECTS)
    return expand(tables, shard=SHARDS)
