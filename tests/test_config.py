"""The config is validated against its schema before anything runs."""

from __future__ import annotations

import pytest

from conftest import only_tasks, snakemake
from senorita.tasks import task_ids


@pytest.mark.parametrize(
    ("config", "named"),
    [
        # Our own one-line messages (Snakemake's validation error would echo the whole config,
        # so a bare key name would be found whatever was said).
        ({"bogus_key": 1}, "config: Additional properties are not allowed ('bogus_key'"),
        ({"clips": {"frame": 33}}, "config key 'clips': Additional properties are not allowed"),
        ({"clips": {"frames": "many"}}, "config key 'clips.frames': 'many' is not of type"),
        ({"source": {"kind": "youtube"}}, "config key 'source.kind': 'youtube' is not one of"),
        ({"tasks": {"deblur": {"sigma": [1.0]}}}, "config key 'tasks.deblur.sigma': [1.0] is"),
    ],
)
def test_bad_config_stops_the_run_naming_the_key(tmp_path, config, named):
    # A real run (not -n, which creates nothing anyway): it stops before any job.
    proc = snakemake(tmp_path, "--cores", "1", "all", config=config, check=False)
    assert proc.returncode != 0
    assert named in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_object_addition_without_object_removal_is_refused(tmp_path):
    config = {"tasks": {"object_removal": {"enabled": False}, "object_addition": {"enabled": True}}}
    proc = snakemake(tmp_path, "-n", "all", config=config, check=False)
    assert proc.returncode != 0
    assert "tasks.object_addition.enabled" in proc.stderr + proc.stdout


def test_a_missing_expert_checkpoint_stops_only_its_tasks(tmp_path):
    config = {
        "shards": 1,
        "source": {"demo": {"videos": 2}},
        "tasks": only_tasks("deblur", "object_removal"),
        "captions": {"enabled": False},
        "export": {"webdataset": False},
        "experts": {"remover": {"id": None}},
    }
    proc = snakemake(tmp_path, "--cores", "2", "--keep-going", "all", config=config, check=False)
    assert proc.returncode != 0
    assert (tmp_path / "dataset" / "deblur" / "manifest.parquet").exists()
    assert not (tmp_path / "results" / "pairs" / "object_removal").exists()
    log = (tmp_path / "logs" / "experts" / "remover.checkpoint.log").read_text()
    assert "config experts.remover.id is not set" in log and "train" in log


def test_default_config_plans_every_built_task(tmp_path):
    proc = snakemake(tmp_path, "-n", "all")
    out = proc.stdout + proc.stderr
    for task in task_ids():
        assert f"dataset/{task}/manifest.parquet" in out


def test_tiny_models_are_built_only_when_the_registry_points_at_them(tmp_path):
    building = "Building tiny random models"  # the rule's message (the tmp path names the rule)
    assert building in snakemake(tmp_path / "tiny", "-n", "all").stdout
    real = {
        "depth": {"id": "depth-anything/Depth-Anything-V2-Small-hf"},
        "hed": {"id": "lllyasviel/Annotators"},
        "captioner": {"id": "Salesforce/blip2-opt-2.7b"},
        "clip": {"id": "openai/clip-vit-large-patch14"},
        "vlm": {"id": "THUDM/cogvlm2-llama3-chat-19B"},
        "detector": {"id": "IDEA-Research/grounding-dino-base"},
        "segmenter": {"id": "facebook/sam2.1-hiera-large"},
        "llm": {"id": "meta-llama/Meta-Llama-3-8B-Instruct"},
        "judge": {"id": "Qwen/Qwen2.5-VL-7B-Instruct"},
    }
    experts = {
        e: {"id": f"my-lab/senorita-{e}"}
        for e in ("remover", "local_stylizer", "inpainter", "global_stylizer")
    }
    experts["inpainter"]["frame_filler"] = {"id": "black-forest-labs/FLUX.1-Fill-dev"}
    experts["global_stylizer"]["frame_stylizer"] = {
        "id": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "controlnet": "lllyasviel/control_v11p_sd15_softedge",
    }
    proc = snakemake(tmp_path / "real", "-n", "all", config={"models": real, "experts": experts})
    assert building not in proc.stdout
    assert "control_maps" in proc.stdout and "Captioning" in proc.stdout
    assert "Finding objects and their masks" in proc.stdout
    assert "Asking the VLM judge" in proc.stdout
