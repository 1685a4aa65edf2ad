"""The phrase parser on answers shaped like real VLM output."""

from __future__ import annotations

import pytest

from senorita.phrases import parse_phrases, singular

ANSWERS = [
    ("1. A man\n2. A red car\n3. Two dogs\n4. Trees", ["man", "red car", "dog", "tree"]),
    (
        "The video shows a woman riding a bicycle on a street with trees.",
        ["woman", "bicycle", "street", "tree"],
    ),
    ("person, person, people, cars, a car.", ["person", "car"]),
    ("- cat\n- sofa\n- pillows\n- cat", ["cat", "sofa", "pillow"]),
    ("Objects: cup of coffee; laptop; glasses", ["cup of coffee", "laptop", "glasses"]),
    ("In this image, I can see a dog and a ball.", ["dog", "ball"]),
    ("There are three children playing in the park.", ["child", "park"]),
    (
        "The main objects in the video are: **Horse**, **Rider**, **Fence** and a barn.",
        ["horse", "rider", "fence", "barn"],
    ),
    (
        "1) boats\n2) the sea\n3) seagulls flying above the water",
        ["boat", "sea", "seagull", "water"],
    ),
    ("A bus parked next to buildings", ["bus", "building"]),
    ("None.", []),
    ("I don't know", []),
    ("", []),
    ("the background, the image, a table", ["table"]),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_realistic_answers_become_clean_phrases(answer, expected):
    assert parse_phrases(answer, max_phrases=8) == expected


def test_at_most_max_phrases_in_answer_order():
    answer = "apple, banana, cherry, date, elderberry, fig"
    assert parse_phrases(answer, max_phrases=3) == ["apple", "banana", "cherry"]


def test_long_pieces_keep_the_head_noun_and_its_nearest_words():
    assert parse_phrases("a big old rusty red pickup trucks", 5, max_words=3) == [
        "red pickup truck"
    ]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("dogs", "dog"),
        ("people", "person"),
        ("leaves", "leaf"),
        ("glass", "glass"),
        ("bus", "bus"),
        ("jeans", "jeans"),
        ("mice", "mouse"),
        ("cactus", "cactus"),
    ],
)
def test_singular(word, expected):
    assert singular(word) == expected
