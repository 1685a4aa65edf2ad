import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from senorita.tasks import MAKERS, enabled_tasks

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


validate(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

RESULTS = config["paths"]["results"]
DATASET = config["paths"]["dataset"]
LOGS = config["paths"]["logs"]
SHARDS = [f"{i:05d}" for i in range(config["shards"])]
TASKS = enabled_tasks(config["tasks"])
OPERATOR_TASKS = [t for t in TASKS if MAKERS[t] == "operator"]


wildcard_constraints:
    shard=r"\d{5}",
    task="|".join(TASKS) or "no-task",


def as_json(value):
    """A config slice as compact JSON, for a stage's --params (and Snakemake's params trigger)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# The Pexels key lives in the environment only (jobs inherit it; it is never put on a command
# line, so no `envvars:` directive, which would export it inside every job's command).
if config["source"]["kind"] == "pexels" and not os.environ.get("PEXELS_API_KEY"):
    raise WorkflowError(
        "config source.kind is 'pexels' but the environment variable PEXELS_API_KEY is not set. "
        "Get a key at https://www.pexels.com/api/ and `export PEXELS_API_KEY=...` before running "
        "(it is read from the environment only, never from the config)."
    )
