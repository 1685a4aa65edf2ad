import json
from pathlib import Path

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
