"""A 19th task, added the way the README tells a newcomer: one operator file and one registry
entry. Here both live in a plug-in module written at test time (config ``plugins``), so the test
registers the task without touching the repository, then builds it with the workflow."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, only_tasks, snakemake
from senorita import tasks
from senorita.config import fill_registered
from senorita.memory import with_defaults
from senorita.video import read_frames

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# The whole addition: an operator (sepia toning, the clip is the target) and its registry entry.
PLUGIN = '''
"""Sepia removal: the source is the clip sepia-toned, the target the clip."""

import numpy as np

from senorita.operators.base import uniform
from senorita.tasks import Task, register

SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


class Sepia:
    name = "sepia"

    def draw(self, rng, cfg, height, width):
        return {"strength": round(uniform(rng, cfg.get("strength", [0.7, 1.0])), 3)}

    def __call__(self, frames, params):
        toned = frames.astype(np.float32) @ SEPIA.T
        mixed = params["strength"] * toned + (1 - params["strength"]) * frames
        return np.clip(mixed, 0, 255).astype(np.uint8)


register(
    Task(
        "sepia_removal", 19, "operator", "sepia operator", "sepia-toned", "original", 0.0,
        ("Remove the sepia tone.", "Restore the colours.", "Undo the sepia filter."),
        operator="sepia_task:Sepia",
    )
)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plug-in on the import path; the registry and environment restored afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "sepia_task.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(tasks.PLUGINS_ENV, "")  # load_plugins sets it; the undo removes it
    yield folder
    tasks.TASKS_BY_ID.pop("sepia_removal", None)
    tasks._REGISTERED[:] = [t for t in tasks._REGISTERED if t.id != "sepia_removal"]
    sys.modules.pop("sepia_task", None)


def test_a_registered_task_joins_the_registry_and_the_config(plugin):
    tasks.load_plugins(["sepia_task"])
    task = tasks.get("sepia_removal")
    assert tasks.task_ids()[-1] == "sepia_removal" and len(tasks.task_ids()) == 19
    assert tasks.task_ids("operator")[-1] == "sepia_removal"
    assert tasks.operator_of("sepia_removal").name == "sepia"
    assert task.filter_kind == "restoration" and not task.needs_masks
    # The jobs' own processes import the plug-in too.
    assert "sepia_task" in __import__("os").environ[tasks.PLUGINS_ENV].split(",")
    # Its config takes the common defaults and the bounds of its filter kind; a set key wins.
    config = with_defaults({"tasks": {"sepia_removal": {"strength": [0.9, 0.9]}}}, SCHEMA)
    fill_registered(config)
    assert config["tasks"]["sepia_removal"] == {
        "enabled": True,
        "clip_fraction": 1.0,
        "strength": [0.9, 0.9],
    }
    assert config["filters"]["tasks"]["sepia_removal"] == config["filters"]["tasks"]["deblur"]
    assert "sepia_removal" in tasks.enabled_tasks(config["tasks"])
    with pytest.raises(ValueError, match="already registered"):
        tasks.register(task)


def test_a_registered_task_is_built_by_the_workflow(plugin, tmp_path):
    config = {
        "plugins": ["sepia_task"],
        "shards": 1,
        "source": {"demo": {"videos": 2}},
        "tasks": {**only_tasks(), "sepia_removal": {"strength": [1.0, 1.0]}},
        "captions": {"enabled": False},
        "export": {"webdataset": False},
    }
    env = {"PYTHONPATH": f"{plugin}:{REPO / 'workflow'}"}
    work = tmp_path / "run"
    snakemake(work, "--cores", "2", "task_sepia_removal", config=config, env=env)
    tasks.load_plugins(["sepia_task"])  # here too, to read its templates
    manifest = pd.read_parquet(work / "dataset" / "sepia_removal" / "manifest.parquet")
    clips = pd.read_parquet(work / "results" / "clips" / "00000.parquet").set_index("clip_id")
    assert len(manifest) == len(clips) > 0  # clip_fraction 1: every clip made a pair
    # Nothing else was built: only this task's pairs exist.
    assert sorted(p.name for p in (work / "results" / "pairs").iterdir()) == ["sepia_removal"]
    for row in manifest.to_dict("records"):
        assert row["instruction"] in tasks.get("sepia_removal").templates
        assert row["maker"] == "operator:sepia"
        assert json.loads(row["params"]) == {"strength": 1.0}
        source = read_frames(work / "dataset" / row["source_path"]).astype(float)
        target = read_frames(work / "dataset" / row["target_path"]).astype(float)
        clip = read_frames(work / clips.loc[row["clip_id"], "path"]).astype(float)
        assert source.shape == target.shape == clip.shape
        assert len(source) == row["frames"] == clips.loc[row["clip_id"], "frames"]
        np.testing.assert_array_equal(target, clip)  # the target is the clip itself
        # Sepia: red over green over blue everywhere the clip is not black.
        r, g, b = (source[..., i].mean() for i in range(3))
        assert r > g > b
