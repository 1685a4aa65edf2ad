"""Checks made before any expert job runs, so a problem stops the run (or only that expert's
tasks) at once, with a message that says what to do:

- the expert checkpoint check (a job per expert, ``expert-checkpoint``);
- the hub token check (at planning time): FLUX.1-Fill and Llama 3 are gated repositories, and a
  run that would download one without a token would fail hours in, in its first GPU job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from senorita.atomic import write_text
from senorita.tasks import asks_llm

# Each expert's pipeline class, by name (importing the classes would load torch and diffusers
# for a check that reads one JSON file; a test keeps this in step with experts.PIPELINES).
PIPELINE_CLASSES = {
    "remover": "RemoverPipeline",
    "local_stylizer": "LocalStylizerPipeline",
    "global_stylizer": "GlobalStylizerPipeline",
    "inpainter": "InpainterPipeline",
    "super_resolver": "SuperResolverPipeline",
}

HOW = (
    "the paper's expert checkpoints are not public: train one with `snakemake train_{name}` "
    "and set experts.{name}.id to results/training/{name}/final (paths.results), or point it at "
    "a diffusers-format {cls} folder or hub repo, or disable its tasks ({tasks})"
)


def check_expert(name: str, cfg: dict[str, Any], tasks: list[str], out: Path) -> dict[str, Any]:
    """Check that ``experts.<name>.id`` names a loadable pipeline of the right class; write a
    small record of what was found. Raises ValueError naming the field otherwise."""
    cls = PIPELINE_CLASSES[name]
    how = HOW.format(name=name, cls=cls, tasks=", ".join(tasks))
    ident, revision = cfg.get("id"), cfg.get("revision")
    if not ident:
        raise ValueError(f"config experts.{name}.id is not set: {how}")
    path = Path(ident).expanduser()
    if path.exists() or ident.startswith(("/", ".", "~")):
        index = path / "model_index.json"
        if not index.exists():
            raise ValueError(f"config experts.{name}.id: {index} does not exist: {how}")
        revision = None
    else:
        from huggingface_hub import hf_hub_download

        try:
            index = Path(hf_hub_download(ident, "model_index.json", revision=revision))
        except Exception as err:  # offline, no such repo, no access: all say the same to a user
            raise ValueError(
                f"config experts.{name}.id {ident!r}: cannot fetch model_index.json "
                f"({type(err).__name__}): {how}"
            ) from None
    meta = json.loads(index.read_text(encoding="utf-8"))
    if meta.get("_class_name") != cls:
        raise ValueError(
            f"config experts.{name}.id {ident!r} holds a {meta.get('_class_name')}, not a {cls}"
        )
    record = {"expert": name, "id": ident, "revision": revision, "class": cls}
    components = {k: v for k, v in meta.items() if not k.startswith("_")}
    record["components"] = components
    write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", out)
    return record


# Gated hub repositories (a licence to accept, then a token): exact ids, or "org/" for all.
GATED = ("black-forest-labs/FLUX.1-Fill-dev", "meta-llama/")


def is_gated(ident: str | None) -> bool:
    """A hub id (not a local path) of a known gated repository."""
    if not ident or ident.startswith(("/", ".", "~")) or ident.count("/") != 1:
        return False
    if Path(ident).expanduser().exists():
        return False
    return any(ident.startswith(g) if g.endswith("/") else ident == g for g in GATED)


def gated_models(config: dict[str, Any], tasks: list[str]) -> dict[str, tuple[str, list[str]]]:
    """The gated hub models the enabled ``tasks`` load: {config field: (id, tasks using it)}."""
    experts = config["experts"]
    used: dict[str, tuple[str | None, list[str]]] = {
        "models.llm.id": (
            config["models"]["llm"]["id"],
            [t for t in tasks if asks_llm(t, experts)],
        ),
        "experts.inpainter.frame_filler.id": (
            experts["inpainter"]["frame_filler"]["id"],
            [t for t in tasks if t == "object_swap"],
        ),
    }
    return {f: (i, ts) for f, (i, ts) in used.items() if ts and is_gated(i)}


def hub_token_problem(config: dict[str, Any], tasks: list[str]) -> str | None:
    """What to tell a user whose enabled tasks need a gated model and who has no hub token
    (``HF_TOKEN``, or the token file ``hf auth login`` writes); None when all is well.

    Offline (``HF_HUB_OFFLINE``) the hub is never asked: models come from the local cache,
    which needs no token.
    """
    gated = gated_models(config, tasks)
    if not gated:
        return None
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE or get_token():
        return None
    lines = [
        f"config {field} is {ident!r}, a gated Hugging Face repository (used by "
        f"{', '.join(users)}), and no Hugging Face token was found."
        for field, (ident, users) in gated.items()
    ]
    repos = ", ".join(f"https://huggingface.co/{ident}" for ident, _ in gated.values())
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    lines.append(
        f"Accept the licence on {repos} with your account, create a read token at "
        "https://huggingface.co/settings/tokens, then either `export HF_TOKEN=hf_...` before "
        f"running or run `hf auth login` once (older: `huggingface-cli login`; it writes "
        f"{home}/token). Or point the field at a local copy, or disable the tasks named."
    )
    return "\n".join(lines)
