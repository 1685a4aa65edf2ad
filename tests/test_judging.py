"""The judge's stage (``senorita.filters.judging``, the judge_scores job) and what follows from
its verdicts: the manifest's gate, the report's judge page and its lowest-scored sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from snakemake.utils import validate

from conftest import REPO, ScriptedModel, planned, snakemake
from senorita.filters import CLIP_SCORES
from senorita.filters.judging import JUDGE_COLUMNS, cache_path, judge_task
from senorita.filters.scoring import SCORE_COLUMNS
from senorita.judge import Judge
from senorita.manifest import build_manifest
from senorita.models.vlm import load_chat_processor
from senorita.preview import lowest_judged, write_previews
from senorita.summary import judge_agreement, judge_distribution, pass_rates, write_judge_html
from senorita.video import write_frames

TASK = "object_removal"
GOOD = '{"instruction": 5, "preservation": 4, "quality": 5, "reason": "The cup is gone."}'
BAD = '{"instruction": 1, "preservation": 5, "quality": 4, "reason": "The cup is still there."}'


def bounds() -> dict:
    config: dict = {}
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config["filters"]["tasks"][TASK]


def panning(seed: int, t: int = 9, h: int = 48, w: int = 80) -> np.ndarray:
    """A textured picture panning across the frame (a clip's kind of content)."""
    rng = np.random.default_rng(seed)
    canvas = rng.integers(0, 256, (h, w + 4 * t, 3), dtype=np.uint8)
    return np.stack([canvas[:, 4 * k : 4 * k + w] for k in range(t)])


@pytest.fixture
def task(tmp_path) -> dict:
    """One task's pairs over two shards, one with a target that does not exist."""
    dataset = tmp_path / "dataset"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        for side, offset in (("org", 0), ("edit", 10)):
            path = dataset / TASK / f"{name}_{side}.mp4"
            write_frames(path, panning(seed + offset), 8.0, crf=18, preset="ultrafast")
    rows = [("a", 0), ("b", 0), ("c", 1), ("gone", 1)]
    for shard in (0, 1):
        table = pd.DataFrame(
            [
                {
                    "pair_id": f"{TASK}-{pid}",
                    "shard": s,
                    "instruction": "Remove the cup.",
                    "fps": 8.0,
                    "source_path": f"{TASK}/{pid}_org.mp4",
                    "target_path": f"{TASK}/{pid}_edit.mp4",
                }
                for pid, s in rows
                if s == shard
            ]
        )
        path = tmp_path / "pairs" / f"{shard:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path, index=False)
    return {
        "root": tmp_path,
        "dataset": dataset,
        "pattern": str(tmp_path / "pairs" / "{shard}.parquet"),
        "tables": sorted((tmp_path / "pairs").glob("*.parquet")),
        "out": tmp_path / "filters" / TASK / "judge.parquet",
    }


def models(qwen: Path, **options) -> dict:
    entry = {"id": str(qwen), "revision": None, "dtype": "float32", "device": "cpu"}
    return {"judge": {**entry, "batch_size": 2, "image_size": 56, "max_new_tokens": 4, **options}}


def scripted(qwen: Path, answers: list[str], loads: list) -> callable:
    """A ``load_judge`` giving the judge a scripted stand-in model over the twin's processor."""

    def load(spec):
        processor = load_chat_processor(str(qwen), "models.judge.id")
        model = ScriptedModel(processor.tokenizer, answers)
        loads.append(model)
        return Judge(model, processor, spec)

    return load


def run(task: dict, qwen: Path, load=None, **options) -> pd.DataFrame:
    params = {"frames": 2, "seed": 0}
    return judge_task(
        TASK, task["pattern"], 2, task["dataset"], params, models(qwen, **options), task["out"],
        load_judge=load,
    )  # fmt: skip


def test_the_twin_judges_every_pair_through_the_real_path_and_a_rerun_asks_nothing(task, qwen):
    df = run(task, qwen)
    assert list(df.columns) == JUDGE_COLUMNS
    assert df["pair_id"].tolist() == [f"{TASK}-{p}" for p in ("a", "b", "c", "gone")]
    by_id = df.set_index("pair_id")
    # A random twin names no verdict: asked twice, left unscored, with the reason; never a pass.
    assert by_id["judge_error"].iloc[:3].str.startswith("unreadable answer").all()
    assert by_id.loc[f"{TASK}-gone", "judge_error"].startswith("unreadable video")
    assert df[["judge_instruction", "judge_preservation", "judge_quality"]].isna().all().all()
    assert (df["judge_frames"] == 2).all() and df["judge_model"].str.endswith(":float32").all()
    assert df["judge_key"].iloc[:3].nunique() == 3 and pd.isna(df["judge_key"].iloc[3])
    cached = cache_path(task["out"]).read_text().splitlines()
    assert len(cached) == 3  # the three readable pairs

    def never(spec):
        raise AssertionError("a rerun with every verdict cached must not load the model")

    again = run(task, qwen, load=never)
    pd.testing.assert_frame_equal(again, df)


def test_verdicts_gate_the_manifest_with_the_judges_reason(task, qwen):
    loads: list = []
    # a: good; b: fails its instruction; c: unreadable twice (never a pass).
    answers = [GOOD, BAD, "I think it is fine.", "Still fine."]
    verdicts = run(task, qwen, load=scripted(qwen, answers, loads))
    assert len(loads) == 1 and not loads[0].answers
    scores = pd.DataFrame(
        [{c: None for c in SCORE_COLUMNS} | {"pair_id": p} for p in verdicts["pair_id"]]
    )
    scores = scores.astype(dict.fromkeys(CLIP_SCORES, "float64"))
    scores_path = task["root"] / "scores.parquet"
    scores.to_parquet(scores_path)  # CLIP scores all null: the CLIP filters pass every pair
    out = task["root"] / "dataset" / TASK / "manifest.parquet"
    build_manifest(task["tables"], out, scores_path, bounds(), task["out"])
    m = pd.read_parquet(out).set_index("pair_id")
    a, b, c, gone = (f"{TASK}-{p}" for p in ("a", "b", "c", "gone"))
    assert m["kept"].tolist() == [True, False, False, False]
    assert m.loc[b, "filter_reason"] == "judge: judge_instruction 1 < 3 (The cup is still there.)"
    assert m.loc[c, "filter_reason"].startswith("judge: unscored: unreadable answer")
    assert m.loc[gone, "filter_reason"].startswith("judge: unscored: unreadable video")
    assert m.loc[a, "judge_instruction"] == 5 and m.loc[a, "judge_reason"] == "The cup is gone."
    assert m["judge_pass"].tolist()[:2] == [True, False] and m["judge_pass"].iloc[2:].isna().all()
    rates = pass_rates([out]).iloc[0]
    assert rates["judge"] == pytest.approx(1 / 4) and rates["kept"] == 1

    # Not gating: the same verdicts are recorded, and nothing is left out for them.
    build_manifest(task["tables"], out, scores_path, bounds(), task["out"], gate_judge=False)
    m = pd.read_parquet(out)
    assert m["kept"].all() and m["filter_reason"].isna().all()
    assert m["judge_pass"].tolist()[:2] == [True, False]
    assert json.loads(m["filter_thresholds"].iloc[0])["gate_judge"] is False

    # The report: distribution, agreement, the lowest kept pair first on its sheet.
    dist = judge_distribution([out]).set_index("score")
    assert dist.loc["instruction", ["1", "5", "unscored"]].tolist() == [1, 1, 2]
    assert dist.loc["instruction", "mean"] == 3.0
    agree = judge_agreement([out])
    mine = agree[agree["task"] == TASK].set_index("CLIP filters")
    assert mine.loc[
        "CLIP filters pass", ["judge passes", "judge fails", "no verdict"]
    ].tolist() == [
        1,
        1,
        2,
    ]
    assert mine.loc["CLIP filters fail"].iloc[1:].sum() == 0
    assert lowest_judged(m, 3)["pair_id"].tolist() == [b, a]
    html = task["root"] / "judge.html"
    write_judge_html([out], html)
    assert "The judge and the CLIP filters" in html.read_text()
    sheet, gif, low = (task["root"] / n for n in ("sheet.png", "p.gif", "low.png"))
    write_previews(m, task["dataset"], sheet, gif, pairs=2, judge_sheet=low)
    assert Image.open(low).height == Image.open(sheet).height  # two pairs on each


def test_only_pairs_whose_videos_changed_are_asked_again(task, qwen):
    loads: list = []
    run(task, qwen, load=scripted(qwen, [GOOD, GOOD, GOOD], loads))
    # b's target is remade (a regenerated pair): only b is asked, with the new video.
    write_frames(
        task["dataset"] / TASK / "b_edit.mp4", panning(99), 8.0, crf=18, preset="ultrafast"
    )
    df = run(task, qwen, load=scripted(qwen, [BAD], loads))
    assert len(loads) == 2 and not loads[1].answers and len(loads[1].asked) == 1
    assert df.set_index("pair_id")["judge_instruction"].tolist()[:3] == [5, 1, 5]
    # The cache holds what this run used: the stale verdict of b's old video is gone.
    assert len(cache_path(task["out"]).read_text().splitlines()) == 3


def test_a_judge_killed_mid_task_keeps_its_verdicts(task, qwen):
    loads: list = []

    class Killed(Exception):
        pass

    def dying(spec):
        judge = scripted(qwen, [GOOD, GOOD], loads)(spec)
        calls = {"n": 0}
        answer = judge.answer

        def once(items, questions):
            calls["n"] += 1
            if calls["n"] > 1:  # the second batch: the job dies
                raise Killed
            return answer(items, questions)

        judge.answer = once
        return judge

    with pytest.raises(Killed):
        run(task, qwen, load=dying)
    assert not task["out"].exists()
    assert len(cache_path(task["out"]).read_text().splitlines()) == 2  # the first batch
    df = run(task, qwen, load=scripted(qwen, [GOOD], loads))
    assert len(loads[-1].asked) == 1  # only c: a and b were cached before the kill
    assert df["judge_instruction"].notna().sum() == 3


def test_the_judge_is_one_job_per_task_and_off_means_none(tmp_path):
    plan = snakemake(tmp_path, "-n", "-p", "all").stdout
    jobs = planned(plan)
    assert jobs["judge_scores"] == jobs["manifest"] == jobs["filter_scores"]
    assert "senorita judge-scores --task deblur" in plan
    # The embedded default records the judge's verdicts without gating (its judge is a twin).
    assert plan.count("--no-judge-gate") == jobs["manifest"]
    assert plan.count("--verdicts results/filters/") == jobs["manifest"]
    off = snakemake(tmp_path, "-n", "-p", "all", config={"filters": {"judge": {"enabled": False}}})
    assert "judge_scores" not in planned(off.stdout)
    assert "--verdicts" not in off.stdout and "judge_lowest.png" not in off.stdout
    # Off, its bounds are not passed to the manifests either.
    manifests = [line for line in off.stdout.splitlines() if "senorita manifest " in line]
    assert manifests and not any("min_judge_instruction" in line for line in manifests)
    assert all(
        "min_judge_instruction" in line
        for line in plan.splitlines()
        if "senorita manifest " in line
    )
