import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from senorita.checkpoints import asks_llm, hub_token_problem
from senorita.config import config_errors
from senorita.models import families_for
from senorita.tasks import MAKERS, TASKS_BY_ID, enabled_tasks

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
if problems := config_errors(config, SCHEMA):
    raise WorkflowError("invalid config:\n  " + "\n  ".join(problems))
validate(config, SCHEMA)  # fills in the schema's defaults
try:
    TASKS = enabled_tasks(config["tasks"])
except ValueError as err:
    raise WorkflowError(str(err)) from None

RESULTS = config["paths"]["results"]
DATASET = config["paths"]["dataset"]
LOGS = config["paths"]["logs"]
SHARDS = [f"{i:05d}" for i in range(config["shards"])]
OPERATOR_TASKS = [t for t in TASKS if MAKERS[t] == "operator"]
CONTROL_TASKS = [t for t in TASKS if MAKERS[t] == "control"]
MASK_TASKS = [t for t in TASKS if MAKERS[t] == "masks"]
EXPERT_TASKS = [t for t in TASKS if MAKERS[t] == "expert"]
REVERSED_TASKS = [t for t in TASKS if MAKERS[t] == "reversed"]
# The expert each expert task needs ("expert:<name>" in the task registry).
EXPERT_OF = {
    t: n.split(":", 1)[1]
    for t in EXPERT_TASKS + REVERSED_TASKS
    for n in TASKS_BY_ID[t].needs
    if n.startswith("expert:")
}
# Which expert tasks read control maps, captions, or ask the language model.
CONTROL_EXPERT_TASKS = ("local_stylization", "global_stylization")
CAPTION_EXPERT_TASKS = ("object_swap", "global_stylization")
# The expert tasks with a language-model job (llm_answers) before their expert job.
LLM_EXPERT_TASKS = [t for t in EXPERT_TASKS if asks_llm(t, config["experts"])]
# What that job reads of the config (its params: other settings do not re-ask the model).
LLM_EXPERT_KEYS = ("attributes", "swap_objects", "styles", "llm_instructions")
LLM_MODEL = {k: v for k, v in config["models"]["llm"].items() if k != "resources"}
if "object_addition" in TASKS and "object_removal" not in TASKS:
    raise WorkflowError(
        "config tasks.object_addition.enabled: object addition reverses the object_removal "
        "pairs; enable tasks.object_removal too"
    )
# The masks stage runs when an enabled task needs masks (grounding now, the experts later).
NEEDS_MASKS = any("masks" in TASKS_BY_ID[t].needs for t in TASKS)
MASK_FAMILIES = ["vlm", "detector", "segmenter"]
# Control-map kinds the enabled tasks need (their "control:<kind>" needs in the task registry),
# and the model families that make them.
CONTROL_KINDS = sorted(
    {
        n.split(":", 1)[1]
        for t in TASKS
        for n in TASKS_BY_ID[t].needs
        if n.startswith("control:")
    }
)
CONTROL_FAMILIES = families_for(CONTROL_KINDS)

# Paths that gather rules expand over all shards, named once here. Gather rules use these plain
# patterns rather than rules.<name>.output: Snakemake hashes a rule-output list once per file in
# it (quadratic in the shard count), which at 2,000 shards would dominate DAG planning.
CATALOGUE = f"{RESULTS}/sources/catalogue.parquet"
VIDEOS = f"{RESULTS}/ingest/{{shard}}.parquet"
INGEST_REJECTS = f"{RESULTS}/ingest/{{shard}}.rejects.parquet"
CLIPS = f"{RESULTS}/clips/{{shard}}.parquet"
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
EXPERTS = ["remover", "local_stylizer", "inpainter", "global_stylizer"]
FILTER_SCORES = f"{RESULTS}/filters/{{task}}/scores.parquet"


wildcard_constraints:
    shard=r"\d{5}",
    task="|".join(TASKS) or "no-task",


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


def launcher(gpus):
    """The training command: accelerate launch with one process per GPU when there are several."""
    if gpus > 1:
        return (
            f"accelerate launch --num_processes {gpus} --num_machines 1 -m senorita.cli"
        )
    return "senorita"
