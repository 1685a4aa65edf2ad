"""Expert tasks: the checkpoint check, the hub token check, the language model job, and pairs
made by the experts."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_masks import ENCODE, H, W, run
from test_masks import shard as shard  # a fixture, shared with the masks tests
from test_masks import tiny as tiny  # a fixture

from conftest import planned, snakemake
from senorita.checkpoints import check_expert, gated_models, hub_token_problem
from senorita.expert_tasks import stylizer_prompt
from senorita.experts import PIPELINES
from senorita.experts.pipeline import cpu_generator
from senorita.instructions import indefinite_article
from senorita.llm_answers import EXPERT_KEYS, llm_answers
from senorita.masks import dilate, load_masks
from senorita.models import ModelSpec
from senorita.models.llm import AnswerCache, ChatLLM, propose, validate, validate_instruction
from senorita.pairs import PairJob, make_task_pairs
from senorita.preview import super_resolution_sheet
from senorita.tasks import get, task_ids
from senorita.testing.tiny import build_tiny_models
from senorita.video import probe, read_frames, write_frames

N, EH, EW = 9, 48, 80  # what the tiny experts generate here


@pytest.fixture(scope="module")
def experts_cfg(tiny):
    folders = build_tiny_models(tiny["root"] / "experts", ("remover", "llm"))
    tiny["models"]["llm"] = {
        "id": str(folders["llm"]),
        "revision": None,
        "dtype": "auto",
        "device": "cpu",
        "batch_size": 1,
    }
    remover = {
        "id": str(folders["remover"]),
        "revision": "main",
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 1,
        "steps": 2,
        "guidance": 2.0,
        "prompt": "Remove {obj}",
        "negative_prompt": "Generate {obj}",
        "resources": {},
    }
    return {
        "frames": N,
        "height": EH,
        "width": EW,
        "dilate_px": 2,
        "paste_back": True,
        "cpu_offload": False,
        "vae_tiling": False,
        "vae_slicing": False,
        "attributes": ["golden", "striped"],
        "swap_objects": ["orange", "teddy bear"],
        "styles": None,
        "llm_instructions": True,
        "drop_static": False,
        "remover": remover,
    }


# -- the checkpoint check -------------------------------------------------------------------------


def test_a_missing_checkpoint_says_what_to_do(tmp_path, experts_cfg):
    cfg = {**experts_cfg["remover"], "id": None}
    with pytest.raises(ValueError, match=r"experts\.remover\.id is not set.*train.*object_removal"):
        check_expert("remover", cfg, ["object_removal"], tmp_path / "c.json")
    cfg["id"] = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"model_index\.json does not exist"):
        check_expert("remover", cfg, ["object_removal"], tmp_path / "c.json")
    # A checkpoint of another expert is refused by class.
    cfg["id"] = experts_cfg["remover"]["id"]
    with pytest.raises(ValueError, match="RemoverPipeline, not a LocalStylizerPipeline"):
        check_expert("local_stylizer", cfg, ["local_stylization"], tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()
    record = check_expert("remover", cfg, ["object_removal"], tmp_path / "c.json")
    assert record["class"] == "RemoverPipeline" and "transformer" in record["components"]
    assert json.loads((tmp_path / "c.json").read_text()) == record


def test_the_check_knows_every_pipeline_class():
    from senorita.checkpoints import PIPELINE_CLASSES
    from senorita.experts import PIPELINES

    assert {name: cls.__name__ for name, cls in PIPELINES.items()} == PIPELINE_CLASSES


# -- the language model step ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Golden.", "golden"),
        ('"Bright red"\nIt would look great.', "bright red"),
        ("A dog", None),  # the object itself
        ("", None),
        ("\x11c\x16A\xa0^UL", None),  # noise
        ("wooden", "wooden"),
    ],
)
def test_answers_are_validated(answer, expected):
    assert validate(answer, "dog") == expected


def test_answers_are_seeded_and_cached_so_a_rerun_asks_nothing(tiny, experts_cfg, tmp_path):
    llm = ChatLLM.load(ModelSpec.from_config(tiny["models"], "llm"))
    asked = []

    class Counting:
        def __call__(self, question, seed):
            asked.append(question)
            return llm(question, seed)

    def check(answer):
        return validate(answer, "dog")

    cache = AnswerCache(tmp_path / "cache.jsonl")
    key, fallback = "c0/attribute/dog", ["golden", "striped"]
    first = propose(Counting(), cache, key, "q?", check, fallback, 7)
    # The model's seeded answer when it passes the check, else the seeded fallback, saying so.
    valid = check(llm("q?", 7))
    assert first == ((valid, "llm") if valid else (first[0], "fallback"))
    assert valid or first[0] in fallback
    asked.clear()
    again = AnswerCache(tmp_path / "cache.jsonl")  # a rerun reads the file
    assert propose(Counting(), again, key, "q?", check, ["x"], 8) == first
    assert not asked
    other = AnswerCache(tmp_path / "other.jsonl")
    assert propose(Counting(), other, key, "q?", check, fallback, 7) == first
    assert len(asked) == 1

    def refuse(answer):
        return None

    # A refused answer: a seeded draw from the fallback, or None without one (a template then).
    drawn = propose(Counting(), other, "c0/attribute/cat", "q?", refuse, fallback, 7)
    assert drawn == (fallback[int(np.random.default_rng(7).integers(2))], "fallback")
    assert propose(Counting(), other, "c0/instruction", "q?", refuse, None, 7) == (None, "none")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Remove the dog from the video.", "Remove the dog from the video."),
        ('"erase the dogs"\nSure!', "Erase the dogs."),
        ("Remove it.", None),  # does not name the object
        ("Remove the dog and then carefully repaint every single pixel behind it", None),
        ("\x11c\x16 dog", None),  # noise
        ("", None),
    ],
)
def test_instructions_are_validated(answer, expected):
    assert validate_instruction(answer, ["dog"], max_words=10) == expected


# -- remover pairs and their reversal -------------------------------------------------------------


def answers(shard, experts_cfg, task, name, **kw):
    """The language-model job of ``task`` for the test shard (its own job, before the expert's)."""
    root = shard["root"]
    out = root / f"{name}.llm.jsonl"
    job = PairJob(
        task,
        0,
        shard["clips"],
        {"clip_fraction": 1.0},
        0,
        out,
        max_words=12,
        masks=kw.get("masks", root / "masks.parquet"),
        captions=kw.get("captions"),
        # Only what its questions read, as the rule passes it.
        experts={k: experts_cfg[k] for k in EXPERT_KEYS},
        models=shard["models"],
    )
    llm_answers(job)
    return out


def expert_pairs(shard, experts_cfg, task, name, cache, control=None, captions=None):
    root = shard["root"]
    job = PairJob(
        task,
        0,
        shard["clips"],
        {"clip_fraction": 1.0},
        0,
        root / f"{name}.parquet",
        dataset=root / "dataset",
        rejects=root / f"{name}.rejects.parquet",
        encode=ENCODE,
        max_words=12,
        masks=root / "masks.parquet",
        control=control,
        captions=captions,
        answers=cache,
        experts=experts_cfg,
    )
    return make_task_pairs(job, stage="expert")


@pytest.fixture(scope="module")
def masked(shard):
    """The shard's mask table (the masks stage, run once for this module)."""
    run(shard, "masks")
    return shard


def removal(shard, experts_cfg, name="removal"):
    cache = answers(shard, experts_cfg, "object_removal", name)
    return expert_pairs(shard, experts_cfg, "object_removal", name, cache)


def answering(monkeypatch, reply):
    """The (really loaded) tiny language model answers ``reply(question)``: a real-looking answer
    (the tiny model's own are random letters), still validated as any answer is."""
    monkeypatch.setattr(ChatLLM, "__call__", lambda self, question, seed: reply(question))


def refuse_llm(monkeypatch):
    """From here on, loading the language model fails the test (an expert job must not)."""

    def refuse(*args, **kwargs):
        raise AssertionError("an expert job loaded the language model")

    monkeypatch.setattr(ChatLLM, "load", classmethod(refuse))


@pytest.fixture(scope="module")
def removal_pairs(masked, experts_cfg):
    return removal(masked, experts_cfg)


def test_removal_pairs_are_the_clip_and_the_remover_output(shard, experts_cfg, removal_pairs):
    pairs = removal_pairs
    root = shard["root"]
    assert len(pairs) == 2
    pasted = 0
    for row in pairs.to_dict("records"):
        params = json.loads(row["params"])
        assert params["checkpoint"] == experts_cfg["remover"]["id"] and params["revision"] is None
        assert params["prompt"] == f"Remove {params['phrase']}"
        assert params["negative_prompt"] == f"Generate {params['phrase']}"
        assert (params["guidance"], params["steps"]) == (2.0, 2) and params["paste_back"]
        assert row["maker"].startswith("expert:remover:") and params["phrase"] in row["instruction"]
        source = read_frames(root / "dataset" / row["source_path"]).astype(int)
        target = read_frames(root / "dataset" / row["target_path"]).astype(int)
        assert source.shape == target.shape == (N, EH, EW, 3) and row["frames"] == N
        assert probe(root / "dataset" / row["target_path"]).frames == N
        # Outside the dilated mask the target is the source (up to the encoder).
        mask = load_masks(params["mask_path"])[params["object"]][:N, ::2, ::2]
        outside = ~dilate(mask, 2 + 2)
        if outside.any():
            assert np.abs(source - target)[outside].mean() < 4
            pasted += 1
    assert pasted, "every mask covered the frame: the paste-back was never checked"
    # Same seed, same pairs: a rerun from scratch gives the same rows.
    again = removal(shard, experts_cfg, name="removal-again")
    cols = ["pair_id", "instruction", "params", "seed"]
    pd.testing.assert_frame_equal(pairs[cols], again[cols])


def test_static_clips_give_no_expert_pair_where_the_config_drops_them(
    masked, experts_cfg, removal_pairs, tmp_path
):
    clips = pd.read_parquet(masked["clips"])
    assert clips["static"].dtype == bool and (clips["motion"] >= 0).all()
    still = removal_pairs["clip_id"].iloc[0]  # a clip that gave a pair: now called static
    flagged = clips.assign(
        static=clips["clip_id"] == still,
        motion=clips["motion"].where(clips["clip_id"] != still, 0.01),
    )
    flagged.to_parquet(tmp_path / "clips.parquet")
    # A shard folder of its own: a pair job prunes the files its table does not list.
    shutil.copy(masked["root"] / "masks.parquet", tmp_path / "masks.parquet")
    shard = {**masked, "root": tmp_path, "clips": tmp_path / "clips.parquet"}
    dropping = {**experts_cfg, "drop_static": True}
    cache = answers(shard, dropping, "object_removal", "static")
    assert not [e for e in cached(cache).values() if still in json.dumps(e)]  # nothing asked
    pairs = expert_pairs(shard, dropping, "object_removal", "static", cache)
    # The other clip's pair is the one made without the drop: its draws did not move.
    cols = ["pair_id", "clip_id", "instruction", "params", "seed"]
    kept = removal_pairs[removal_pairs["clip_id"] != still][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(pairs[cols].reset_index(drop=True), kept)
    rejects = pd.read_parquet(tmp_path / "static.rejects.parquet")
    path = clips.loc[clips["clip_id"] == still, "path"].item()
    assert rejects.loc[rejects["path"] == path, "reason"].tolist() == [
        "static clip: motion 0.01 px/frame (experts.drop_static)"
    ]


def test_addition_pairs_reverse_the_removal_files(shard, removal_pairs):
    root = shard["root"]
    forward = removal_pairs
    job = PairJob(
        "object_addition",
        0,
        shard["clips"],
        {"clip_fraction": 1.0},
        0,
        root / "addition.parquet",
        dataset=root / "dataset",
        rejects=root / "addition.rejects.parquet",
        max_words=12,
        forward=root / "removal.parquet",
    )
    added = make_task_pairs(job, stage="reversed")
    assert len(added) == len(forward) == 2
    by_clip = forward.set_index("clip_id")
    for row in added.to_dict("records"):
        fwd = by_clip.loc[row["clip_id"]]
        assert os.path.samefile(
            root / "dataset" / row["source_path"], root / "dataset" / fwd["target_path"]
        )
        assert os.path.samefile(
            root / "dataset" / row["target_path"], root / "dataset" / fwd["source_path"]
        )
        params = json.loads(row["params"])
        assert params["reversed_from"] == fwd["pair_id"] and row["maker"].startswith(
            "reversed:expert:"
        )
        assert row["template_id"].startswith("object_addition/")
        assert params["phrase"] in row["instruction"]


# -- the language model's own job -----------------------------------------------------------------


def cached(path):
    return {e["key"]: e for e in map(json.loads, path.read_text().splitlines())}


def test_the_expert_job_reads_the_llm_jobs_answers_and_never_loads_the_model(
    shard, experts_cfg, removal_pairs, monkeypatch, caplog
):
    root = shard["root"]
    refuse_llm(monkeypatch)
    cache = cached(root / "removal.llm.jsonl")
    # One instruction question per pair, asked by the language-model job.
    assert len(cache) == 2 and all("/instruction/remove the " in k for k in cache)
    for row in removal_pairs.to_dict("records"):
        entry = cache[
            f"{row['clip_id']}/instruction/remove the {json.loads(row['params'])['phrase']}"
        ]
        expected = entry["answer"] or row["instruction"]  # None: the template stood in
        assert row["instruction"] == expected
        assert row["template_id"] == (
            "object_removal/llm" if entry["answer"] else row["template_id"]
        )
    # The expert job alone, from the cache: same rows, the model never loaded, progress logged.
    with caplog.at_level(logging.INFO, logger="senorita.progress"):
        again = expert_pairs(
            shard, experts_cfg, "object_removal", "removal-cached", root / "removal.llm.jsonl"
        )
    cols = ["pair_id", "instruction", "params", "seed"]
    pd.testing.assert_frame_equal(removal_pairs[cols], again[cols])
    lines = [r.getMessage() for r in caplog.records if r.name == "senorita.progress"]
    assert any(line.startswith("pairs object_removal 00000: 2/2 clips") for line in lines), lines

    # A missing answer stops the job, naming the clip, before any expert runs.
    first = sorted(cache)[0]
    partial = root / "partial.llm.jsonl"
    partial.write_text(
        "".join(json.dumps(e) + "\n" for k, e in sorted(cache.items()) if k != first)
    )
    clip_id = first.split("/")[0]
    with pytest.raises(ValueError, match=rf"clip {clip_id}: no language-model answer.*llm_answers"):
        expert_pairs(shard, experts_cfg, "object_removal", "removal-partial", partial)
    with pytest.raises(ValueError, match="no language-model answer"):
        expert_pairs(shard, experts_cfg, "object_removal", "removal-none", None)


def test_an_instruction_the_llm_job_wrote_is_the_pair_s_instruction(
    masked, experts_cfg, monkeypatch
):
    # The tiny model's answers never validate (random letters), so the path where a model's
    # instruction reaches the pair row is driven here by a real-looking answer.
    def reply(question):
        edit = re.search(r"asking a video editor to remove the (.+?)\. Answer", question)
        return f"Remove the {edit.group(1)} now."

    answering(monkeypatch, reply)
    cache = answers(masked, experts_cfg, "object_removal", "removal-llm")
    entries = cached(cache)
    assert len(entries) == 2 and {e["source"] for e in entries.values()} == {"llm"}
    refuse_llm(monkeypatch)
    pairs = expert_pairs(masked, experts_cfg, "object_removal", "removal-llm", cache)
    assert len(pairs) == 2
    for row in pairs.to_dict("records"):
        phrase = json.loads(row["params"])["phrase"]
        assert row["instruction"] == f"Remove the {phrase} now."
        assert row["template_id"] == "object_removal/llm"


def test_the_llm_job_resumes_and_asks_nothing_twice(
    shard, experts_cfg, removal_pairs, monkeypatch, caplog
):
    root = shard["root"]
    full = cached(root / "removal.llm.jsonl")
    asked = []
    call = ChatLLM.__call__

    def counting(self, question, seed):
        asked.append(question)
        return call(self, question, seed)

    monkeypatch.setattr(ChatLLM, "__call__", counting)
    # A killed job left one answer in its .part file: the rerun asks only the other one.
    out = root / "resumed.llm.jsonl"
    first = sorted(full)[0]
    out.with_name(out.name + ".part").write_text(json.dumps(full[first]) + "\n")
    with caplog.at_level(logging.INFO, logger="senorita.progress"):
        answers(shard, experts_cfg, "object_removal", "resumed")
    assert len(asked) == 1 and cached(out) == full
    assert not out.with_name(out.name + ".part").exists()
    assert any(
        r.getMessage().startswith("llm object_removal 00000: 2/2 clips") for r in caplog.records
    )
    # Run again with every answer in place: nothing is asked, the model is not even loaded.
    refuse_llm(monkeypatch)
    answers(shard, experts_cfg, "object_removal", "resumed")
    assert len(asked) == 1 and cached(out) == full


# -- local stylization: the prompt's article ------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "obj", "prompt"),
    [
        ("yellow", "house", "It's a yellow house."),
        ("orange", "car", "It's an orange car."),
        ("ivory", "umbrella", "It's an ivory umbrella."),
        ("unicorn-patterned", "mug", "It's a unicorn-patterned mug."),
        ("hour-glass", "vase", "It's an hour-glass vase."),
        ("wooden", "eagle", "It's a wooden eagle."),
    ],
)
def test_the_local_stylizer_prompt_has_its_article(attribute, obj, prompt):
    import yaml

    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    default = schema["properties"]["experts"]["properties"]["local_stylizer"]["properties"]
    assert stylizer_prompt(default["prompt"]["default"], attribute, obj) == prompt
    assert indefinite_article(f"{attribute} {obj}") == prompt.split()[1]


@pytest.fixture(scope="module")
def more_experts(tiny, experts_cfg):
    folders = build_tiny_models(
        tiny["root"] / "more-experts", ("local_stylizer", "inpainter", "frame_filler")
    )
    common = {
        k: experts_cfg["remover"][k]
        for k in ("revision", "dtype", "device", "batch_size", "steps", "resources")
    }
    return {
        **experts_cfg,
        "local_stylizer": {
            **common,
            "id": str(folders["local_stylizer"]),
            "guidance": 6.0,
            "prompt": "It's {article} {attribute} {obj}.",
            "negative_prompt": "",
            "conditioning_scale": 1.0,
        },
        "inpainter": {
            **common,
            "id": str(folders["inpainter"]),
            "guidance": 6.0,
            "prompt": "It's {new_obj}.",
            "negative_prompt": "",
            "frame_filler": {
                "id": str(folders["frame_filler"]),
                "revision": None,
                "dtype": "float32",
                "device": "cpu",
                "cpu_offload": False,
                "steps": 2,
                "guidance": 30.0,
                "max_sequence_length": 16,
                "prompt": "{article} {new}",
            },
        },
    }


def control_table(shard) -> Path:
    """HED, Canny and depth 'maps' of each clip (the clip itself: enough for the tiny models)."""
    root = shard["root"]
    rows = []
    for clip in pd.read_parquet(shard["clips"]).to_dict("records"):
        for kind in ("hed", "canny", "depth"):
            rows.append({"clip_id": clip["clip_id"], "kind": kind, "path": clip["path"]})
    path = root / "control.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_local_stylization_prompts_the_expert_with_an_article(masked, more_experts, monkeypatch):
    shard = masked
    with monkeypatch.context() as m:
        answering(m, lambda q: "Orange." if "colour" in q else "Make the square orange.")
        cache = answers(shard, more_experts, "local_stylization", "stylized")
    refuse_llm(monkeypatch)
    seen = []
    encode = PIPELINES["local_stylizer"].encode_prompt

    def spy(self, prompts):
        seen.extend(prompts)
        return encode(self, prompts)

    monkeypatch.setattr(PIPELINES["local_stylizer"], "encode_prompt", spy)
    pairs = expert_pairs(
        shard, more_experts, "local_stylization", "stylized", cache, control=control_table(shard)
    )
    assert len(pairs) == 2
    for row in pairs.to_dict("records"):
        params = json.loads(row["params"])
        assert params["attribute"] == "orange" and params["attribute_source"] == "llm"
        prompt = f"It's an orange {params['phrase']}."
        assert params["prompt"] == prompt and prompt in seen  # what the expert was given
        if params["phrase"] == "square":
            assert row["instruction"] == "Make the square orange."


# -- object swap: frame 0 is the source outside the mask ------------------------------------------


def test_swap_paste_back_keeps_the_source_outside_the_mask_in_every_frame(more_experts):
    from senorita.models.frame_editors import FrameFiller

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (N, EH, EW, 3), dtype=np.uint8)
    mask = np.zeros((N, EH, EW), bool)
    mask[:, 16:40, 24:56] = True
    mask = dilate(mask, 2)
    cfg = more_experts["inpainter"]
    filler = FrameFiller.load(cfg["frame_filler"])
    first = filler(image=frames[0], mask_image=mask[0], prompt="a cat", generator=cpu_generator(1))
    # FLUX returns a whole frame: outside the mask it is its VAE's round trip, not the source.
    assert not np.array_equal(first[~mask[0]], frames[0][~mask[0]])
    pipe = PIPELINES["inpainter"].from_pretrained(cfg["id"])
    pipe.set_progress_bar_config(disable=True)
    call = {"video": frames, "mask_video": mask, "image": first, "prompt": "It's cat."}
    out = pipe(**call, num_inference_steps=2, generator=cpu_generator(0), paste_back=True)
    for t in range(N):
        outside = ~mask[t]
        assert np.array_equal(out.frames[t][outside], frames[t][outside]), f"frame {t}"
        assert np.array_equal(out.frames[t][mask[t]], out.generated[t][mask[t]])
    raw = pipe(**call, num_inference_steps=2, generator=cpu_generator(0), paste_back=False)
    assert np.array_equal(raw.frames, raw.generated)


def test_swap_pairs_take_the_new_object_from_the_llm_job(masked, more_experts, monkeypatch):
    shard = masked
    root = shard["root"]
    captions = root / "captions.parquet"
    ids = pd.read_parquet(shard["clips"])["clip_id"]
    pd.DataFrame({"clip_id": ids, "caption": "a square moving on a wall"}).to_parquet(captions)
    cfg = more_experts
    with monkeypatch.context() as m:
        answering(m, lambda q: "An orange" if "object" in q else "Swap it.")
        cache = answers(shard, cfg, "object_swap", "swapped", captions=captions)
    entries = cached(cache)
    assert {k.split("/")[1] for k in entries} == {"swap", "instruction"}
    refuse_llm(monkeypatch)
    pairs = expert_pairs(shard, cfg, "object_swap", "swapped", cache, captions=captions)
    assert len(pairs) == 2
    for row in pairs.to_dict("records"):
        params = json.loads(row["params"])
        key = f"{row['clip_id']}/swap/{params['phrase']}"
        assert params["new_object"] == entries[key]["answer"] == "orange"
        assert params["frame_filler_prompt"] == "an orange"
        assert params["prompt"] == "It's orange."
        target = read_frames(root / "dataset" / row["target_path"])
        assert target.shape == (N, EH, EW, 3)


# -- gated models need a hub token ----------------------------------------------------------------

GATED = {
    "models": {"llm": {"id": "meta-llama/Meta-Llama-3-8B-Instruct"}},
    "experts": {"inpainter": {"frame_filler": {"id": "black-forest-labs/FLUX.1-Fill-dev"}}},
}


def no_token_env(monkeypatch, tmp_path):
    """No token anywhere: no HF_* variables, a HOME without a token file, online."""
    for key in list(os.environ):
        if key.startswith(("HF_", "HUGGING_FACE")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return {"HF_HUB_OFFLINE": "0"}


def test_gated_models_are_named_only_when_a_hub_id_an_enabled_task_loads(tmp_path):
    config = {
        "models": {"llm": {"id": "meta-llama/Meta-Llama-3-8B-Instruct"}},
        "experts": {
            "llm_instructions": False,
            "inpainter": {"frame_filler": {"id": "black-forest-labs/FLUX.1-Fill-dev"}},
        },
    }
    assert set(gated_models(config, ["object_swap"])) == {
        "models.llm.id",
        "experts.inpainter.frame_filler.id",
    }
    assert set(gated_models(config, ["local_stylization"])) == {"models.llm.id"}
    assert gated_models(config, ["object_removal", "deblur"]) == {}  # no instructions asked
    config["experts"]["llm_instructions"] = True
    assert set(gated_models(config, ["object_removal"])) == {"models.llm.id"}
    local = tmp_path / "meta-llama" / "Llama-3"  # a local copy, however it is named
    local.mkdir(parents=True)
    config["models"]["llm"]["id"] = str(local)
    config["experts"]["inpainter"]["frame_filler"]["id"] = "my-lab/flux-fill-copy"
    assert gated_models(config, ["object_swap"]) == {}
    assert hub_token_problem(config, ["object_swap"]) is None


def test_a_run_without_a_hub_token_stops_before_any_job(tmp_path, monkeypatch):
    env = no_token_env(monkeypatch, tmp_path)
    # A real run (-n creates nothing anyway): it stops before any job.
    proc = snakemake(tmp_path / "run", "--cores", "1", "all", config=GATED, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "meta-llama/Meta-Llama-3-8B-Instruct" in out and "models.llm.id" in out
    assert "black-forest-labs/FLUX.1-Fill-dev" in out and "HF_TOKEN" in out
    assert "hf auth login" in out
    assert "llm_answers" not in out  # nothing was planned
    assert not (tmp_path / "run" / "results").exists()
    assert not (tmp_path / "run" / "logs").exists()
    # With a token (or the tasks off) the same run plans, the language model in its own jobs.
    proc = snakemake(tmp_path / "run", "-n", "all", config=GATED, env={**env, "HF_TOKEN": "hf_x"})
    assert "llm_answers" in proc.stdout
    off = {
        **GATED,
        "tasks": {t: {"enabled": False} for t in task_ids("expert") + task_ids("reversed")},
    }
    snakemake(tmp_path / "off", "-n", "all", config=off, env=env)


# -- the super-resolution stage ---------------------------------------------------------------

SR = 2  # the super-resolver's output: twice the experts' working size


@pytest.fixture(scope="module")
def lifted(masked, experts_cfg):
    """Removal pairs with the super-resolution stage on, from 2x originals of the clips."""
    root = masked["root"]
    folders = build_tiny_models(root / "sr", ("super_resolver",))
    rows = []
    for clip in pd.read_parquet(masked["clips"]).to_dict("records"):
        # The original: the clip at twice its size, each clip frame twice (the clip's stride 2).
        frames = read_frames(clip["path"])
        big = np.stack(
            [cv2.resize(f, (2 * W, 2 * H), interpolation=cv2.INTER_CUBIC) for f in frames]
        )
        path = root / "originals" / f"{clip['video_id']}.mp4"
        write_frames(path, np.repeat(big, 2, axis=0), 16.0, crf=12, preset="ultrafast")
        rows.append({"video_id": clip["video_id"], "path": str(path)})
    videos = root / "sr_videos.parquet"
    pd.DataFrame(rows).to_parquet(videos)
    cfg = {
        **experts_cfg,
        "super_resolution": {"enabled": True},
        "super_resolver": {
            "id": str(folders["super_resolver"]),
            "revision": "main",
            "dtype": "float32",
            "device": "cpu",
            "batch_size": 1,
            "steps": 2,
            "guidance": 1.0,
            "negative_prompt": "",
            "height": SR * EH,
            "width": SR * EW,
            "tile": [EH, EW],
            "tile_overlap": 16,
            "resources": {},
        },
    }
    cache = answers(masked, cfg, "object_removal", "lifted")
    job = PairJob(
        "object_removal", 0, masked["clips"], {"clip_fraction": 1.0}, 0, root / "lifted.parquet",
        dataset=root / "dataset_sr", rejects=root / "lifted.rejects.parquet", encode=ENCODE,
        max_words=12, masks=root / "masks.parquet", answers=cache, experts=cfg, videos=videos,
    )  # fmt: skip
    return make_task_pairs(job, stage="expert"), cfg, root


def test_super_resolution_lifts_the_pairs_and_pastes_the_recut_source_outside_the_mask(
    lifted, removal_pairs, shard
):
    pairs, cfg, root = lifted
    assert len(pairs) == len(removal_pairs) == 2
    # The same pairs as without the stage (ids, instructions, seeds), at the output size.
    cols = ["pair_id", "instruction", "seed"]
    pd.testing.assert_frame_equal(pairs[cols], removal_pairs[cols])
    for side in ("source", "target"):
        assert (pairs[f"{side}_height"] == SR * EH).all() and (
            pairs[f"{side}_width"] == SR * EW
        ).all()
    for row, plain in zip(pairs.to_dict("records"), removal_pairs.to_dict("records"), strict=True):
        params = json.loads(row["params"])
        assert (params["working_height"], params["working_width"]) == (EH, EW)
        assert (params["output_height"], params["output_width"]) == (SR * EH, SR * EW)
        assert params["super_resolver"] == cfg["super_resolver"]["id"]
        assert params["super_resolver_steps"] == 2
        assert params["super_resolver_seed"] == params["seed"]
        source = read_frames(root / "dataset_sr" / row["source_path"]).astype(int)
        target = read_frames(root / "dataset_sr" / row["target_path"]).astype(int)
        assert source.shape == target.shape == (N, SR * EH, SR * EW, 3)
        # The source is re-cut from the original, aligned: shrunk back it is the working source.
        working = read_frames(shard["root"] / "dataset" / plain["source_path"]).astype(float)
        small = np.stack(
            [cv2.resize(f.astype(np.uint8), (EW, EH), interpolation=cv2.INTER_AREA) for f in source]
        )
        mse = np.mean((small.astype(float) - working) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 25
        # Outside the dilated mask, resized to the output size, the target is the source.
        mask = load_masks(params["mask_path"])[params["object"]][:N]
        mask = np.stack(
            [
                cv2.resize(m.astype(np.uint8), (SR * EW, SR * EH), interpolation=cv2.INTER_NEAREST)
                for m in mask
            ]
        ).astype(bool)
        outside = ~dilate(mask, SR * (2 + 2))
        assert outside.any()
        assert np.abs(source - target)[outside].mean() < 4
        assert np.abs(source - target)[~outside].mean() > 4  # the lifted region is generated
        # The expert's own output is kept for the report, at the working size.
        assert read_frames(params["working_target"]).shape == (N, EH, EW, 3)
    sheet = root / "super_resolution.png"
    assert super_resolution_sheet(pairs, sheet, root / "dataset_sr") == 2
    assert super_resolution_sheet(removal_pairs, root / "none.png", root / "dataset") == 0
    assert Image.open(sheet).height > 2 * Image.open(root / "none.png").height


def test_super_resolution_off_and_on_plans_only_the_expert_tasks_again(tmp_path):
    off = snakemake(tmp_path, "-n", "-p", "all").stdout
    on = snakemake(
        tmp_path, "-n", "-p", "all", config={"experts": {"super_resolution": {"enabled": True}}}
    ).stdout
    assert "train-expert --expert super_resolver" not in off
    assert "train-expert --expert super_resolver" in on
    expert_jobs = [line for line in on.splitlines() if "senorita expert-pairs" in line]
    assert expert_jobs and all("--videos results/ingest/" in line for line in expert_jobs)
    other = [line for line in on.splitlines() if "senorita operator-pairs" in line]
    assert other and not any("--videos" in line for line in other)
    manifests = [line for line in on.splitlines() if "senorita manifest " in line]
    assert manifests and all("--sr-sheet results/report/" in line for line in manifests)
    assert "--sr-sheet" not in off


def test_turning_super_resolution_on_replans_only_the_expert_tasks(demo_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(demo_run, work, symlinks=True)
    on = {"experts": {"super_resolution": {"enabled": True}}}
    jobs = planned(snakemake(work, "-n", "all", config=on).stdout)
    experts = [t for t in task_ids() if get(t).stage == "expert"]
    lifted = experts + [t for t in task_ids() if get(t).reverses in experts]
    assert jobs["expert_pairs"] == 2 * len(experts)
    assert jobs["reversed_pairs"] == 2 * (len(lifted) - len(experts))
    assert jobs["train_expert"] == jobs["expert_checkpoint"] == 1  # the super-resolver's
    for rule in ("filter_scores", "judge_scores", "manifest"):
        assert jobs[rule] == len(lifted), rule
    assert not {"clips", "operator_pairs", "control_pairs", "grounding_pairs", "llm_answers"} & set(
        jobs
    )
    # One task: its own pairs and what reads them, nothing of the other expert tasks.
    one = planned(snakemake(work, "-n", "task_object_removal", config=on).stdout)
    assert one["expert_pairs"] == 2 and one["manifest"] == 1 and "reversed_pairs" not in one
