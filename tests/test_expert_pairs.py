"""Expert tasks: the checkpoint check, the language model step, and pairs made by the experts."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from test_masks import ENCODE, run
from test_masks import shard as shard  # a fixture, shared with the masks tests
from test_masks import tiny as tiny  # a fixture

from senorita.checkpoints import check_expert
from senorita.expert_pairs import make_expert_pairs, make_reversed_pairs
from senorita.masks import dilate, load_masks
from senorita.models import ModelSpec
from senorita.models.llm import AnswerCache, ChatLLM, propose, validate, validate_instruction
from senorita.testing.tiny import build_tiny_models
from senorita.video import probe, read_frames

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
        "llm_instructions": True,
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
    # The tiny model's answer is noise: the seeded fallback stands in, and says so.
    assert first[0] in ("golden", "striped") and first[1] == "fallback"
    again = AnswerCache(tmp_path / "cache.jsonl")  # a rerun reads the file
    assert propose(Counting(), again, key, "q?", check, ["x"], 8) == first
    assert len(asked) == 1
    other = AnswerCache(tmp_path / "other.jsonl")
    assert propose(Counting(), other, key, "q?", check, fallback, 7) == first
    # With no fallback a failed answer is None: the caller uses its template.
    assert propose(Counting(), other, "c0/instruction", "q?", check, None, 7) == (None, "none")


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


def removal(shard, experts_cfg, name="removal"):
    root = shard["root"]
    run(shard, "masks")
    return make_expert_pairs(
        "object_removal",
        0,
        shard["clips"],
        shard["videos"],
        root / "masks.parquet",
        None,
        None,
        {"clip_fraction": 1.0},
        experts_cfg,
        shard["models"],
        0,
        ENCODE,
        root / "dataset",
        root / f"{name}.parquet",
        root / f"{name}.rejects.parquet",
        root / f"{name}.llm.jsonl",
        max_words=12,
    )


@pytest.fixture(scope="module")
def removal_pairs(shard, experts_cfg):
    return removal(shard, experts_cfg)


def test_removal_pairs_are_the_clip_and_the_remover_output(shard, experts_cfg, removal_pairs):
    pairs = removal_pairs
    root = shard["root"]
    assert len(pairs) == 2
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
    # Same seed, same pairs: a rerun from scratch gives the same rows.
    again = removal(shard, experts_cfg, name="removal-again")
    cols = ["pair_id", "instruction", "params", "seed"]
    pd.testing.assert_frame_equal(pairs[cols], again[cols])


def test_addition_pairs_reverse_the_removal_files(shard, removal_pairs):
    root = shard["root"]
    forward = removal_pairs
    added = make_reversed_pairs(
        "object_addition",
        0,
        shard["clips"],
        shard["videos"],
        root / "removal.parquet",
        {"clip_fraction": 1.0},
        0,
        root / "dataset",
        root / "addition.parquet",
        root / "addition.rejects.parquet",
        max_words=12,
    )
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
