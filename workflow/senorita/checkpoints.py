"""The expert checkpoint check: run before any expert job, so a missing checkpoint stops only
that expert's tasks, at once, with a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from senorita.atomic import write_text

# Each expert's pipeline class, by name (importing the classes would load torch and diffusers
# for a check that reads one JSON file; a test keeps this in step with experts.PIPELINES).
PIPELINE_CLASSES = {
    "remover": "RemoverPipeline",
    "local_stylizer": "LocalStylizerPipeline",
    "global_stylizer": "GlobalStylizerPipeline",
    "inpainter": "InpainterPipeline",
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
