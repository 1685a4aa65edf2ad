"""The judge's rubric per task and its strict reading of answers, on answers shaped like the ones
chat VLMs give (JSON alone, in prose, in markdown fences, with missing keys or numbers out of
range)."""

from __future__ import annotations

import pytest

from conftest import ScriptedModel
from senorita.judge import (
    MAX_REASON,
    Verdict,
    VerdictError,
    judges_a_map,
    parse_verdict,
    retry_prompt,
    rubric,
)
from senorita.tasks import all_tasks, get

GOOD = Verdict(instruction=4, preservation=5, quality=3, reason="The cup is gone.")


@pytest.mark.parametrize(
    "answer",
    [
        '{"instruction": 4, "preservation": 5, "quality": 3, "reason": "The cup is gone."}',
        'Sure! Here is my assessment:\n{"instruction": 4, "preservation": 5, "quality": 3, '
        '"reason": "The cup is gone."}\nLet me know if you need more.',
        '```json\n{\n  "instruction": 4,\n  "preservation": 5,\n  "quality": 3,\n'
        '  "reason": "The cup is gone."\n}\n```',
        '{"Instruction": "4", "PRESERVATION": 5.0, "quality": "3/5", "reason": "The cup is gone."}',
        # A first draft, then the answer: the last complete object counts.
        'Draft {"instruction": 1} ... final: {"instruction": 4, "preservation": 5, "quality": 3, '
        '"reason": "The   cup\\nis gone."}',
    ],
)
def test_answers_with_a_complete_verdict_are_read(answer):
    verdict = parse_verdict(answer)
    assert verdict.scores() == GOOD.scores()
    assert verdict.reason == "The cup is gone."  # whitespace collapsed to one line


def test_braces_inside_strings_do_not_split_the_object():
    answer = '{"instruction": 2, "preservation": 3, "quality": 4, "reason": "left {brace} in"}'
    assert parse_verdict(answer) == Verdict(2, 3, 4, "left {brace} in")


def test_a_missing_reason_is_empty_and_a_long_one_is_cut():
    assert parse_verdict('{"instruction": 5, "preservation": 5, "quality": 5}').reason == ""
    long = "word " * 100
    answer = f'{{"instruction": 5, "preservation": 5, "quality": 5, "reason": "{long}"}}'
    assert len(parse_verdict(answer).reason) == MAX_REASON


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("The edit looks good, I'd give it a 4.", "no JSON object"),
        ("", "no JSON object"),
        ('{"instruction": 4, "preservation": 5 "quality": 3}', "no JSON object"),  # broken JSON
        ('{"instruction": 4, "quality": 3, "reason": "ok"}', "missing preservation"),
        ('{"instruction": 6, "preservation": 5, "quality": 3}', "instruction is 6, outside 1-5"),
        ('{"instruction": 0, "preservation": 5, "quality": 3}', "instruction is 0, outside 1-5"),
        ('{"instruction": 4.5, "preservation": 5, "quality": 3}', "not a whole number"),
        ('{"instruction": "good", "preservation": 5, "quality": 3}', "not a whole number"),
        ('{"instruction": true, "preservation": 5, "quality": 3}', "not a score"),
        ('{"instruction": null, "preservation": 5, "quality": 3}', "not a whole number"),
        ("[4, 5, 3]", "no JSON object"),
    ],
)
def test_answers_without_a_valid_verdict_say_why(answer, why):
    with pytest.raises(VerdictError, match=why):
        parse_verdict(answer)


def test_detection_tasks_are_judged_on_the_map_and_the_rest_as_edits():
    maps = {t.id for t in all_tasks() if judges_a_map(t)}
    assert maps == {"depth_detection", "hed_detection", "scribble_detection", "grounding"}
    edit = rubric(get("object_removal"), "Remove the cup.")
    assert "video edit" in edit and "'Remove the cup.'" in edit
    depth = rubric(get("depth_detection"), "Estimate the depth.")
    assert "depth video of the first" in depth and "video edit" not in depth
    for text in (edit, depth):
        assert all(f'"{k}"' in text for k in ("instruction", "preservation", "quality", "reason"))
    again = retry_prompt(edit, "missing quality")
    assert again.startswith(edit) and "(missing quality)" in again


# -- asking a model ------------------------------------------------------------------------------


def spec(path, **options):
    from senorita.models import ModelSpec

    entry = {"id": str(path), "revision": None, "dtype": "auto", "device": "cpu"}
    return ModelSpec.from_config({"judge": {**entry, "batch_size": 2, **options}}, "judge")


def items(n: int, pairs: int = 2) -> list:
    import numpy as np

    from senorita.judge import JudgeItem

    rng = np.random.default_rng(0)
    frames = lambda: [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(pairs)]  # noqa: E731
    question = rubric(get("object_removal"), "Remove the cup.")
    return [JudgeItem(frames(), frames(), question) for _ in range(n)]


def test_the_qwen_twin_answers_every_pair_and_is_asked_again_after_an_unreadable_answer(qwen):
    from senorita.judge import Judge

    judge = Judge.load(spec(qwen, max_new_tokens=6, image_size=56))
    calls = []
    generate = judge.model.generate

    def counted(**inputs):
        calls.append(inputs)
        return generate(**inputs)

    judge.model.generate = counted
    results = judge(items(3))
    assert len(results) == 3
    # A random twin's answer is no verdict: each pair was asked twice, then left unscored.
    assert all(isinstance(r, VerdictError) for r in results)
    assert [len(c["input_ids"]) for c in calls] == [2, 1, 2, 1]  # batches of 2, first and retry
    start = judge.processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert ((calls[0]["input_ids"] == start).sum(dim=1) == 4).all()  # 2 frame pairs, 2 images
    retry = judge.processor.batch_decode(calls[2]["input_ids"])[0]
    assert "Your previous answer could not be read" in retry


def test_a_verdict_is_read_and_an_unreadable_answer_asked_once_more(qwen):
    from senorita.judge import Judge
    from senorita.models.vlm import load_processor

    processor = load_processor(str(qwen))
    good = '{"instruction": 4, "preservation": 5, "quality": 3, "reason": "Cup removed."}'
    script = [
        "Looks fine to me.",  # pair 1: unreadable
        good,  # pair 2
        "```json\n" + good.replace("4", "2") + "\n```",  # pair 1 again
    ]
    model = ScriptedModel(processor.tokenizer, script)
    judge = Judge(model, processor, spec(qwen, image_size=56))
    processor.tokenizer.padding_side = "left"
    first, second = judge(items(2, pairs=1))
    assert first == Verdict(2, 5, 3, "Cup removed.") and second == Verdict(4, 5, 3, "Cup removed.")
    assert len(model.asked) == 3 and "(no JSON object in the answer)" in model.asked[2]
    model.answers = ["no", "still no"]
    (unscored,) = judge(items(1, pairs=1))
    assert isinstance(unscored, VerdictError) and "no JSON object" in str(unscored)
