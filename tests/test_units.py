"""Fast unit tests of the pure pieces: ids, windows, journal, registry, instructions."""

from __future__ import annotations

import os
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from senorita.clips import choose_windows
from senorita.ids import derive_seed, shard_of
from senorita.instructions import draw_instruction
from senorita.journal import Journal, prune
from senorita.tasks import STAGES, TASKS, TASKS_BY_ID, Task, enabled_tasks, get, operator_of

SPEC_TASK_IDS = [
    "object_addition",
    "object_removal",
    "local_stylization",
    "grounding",
    "object_swap",
    "global_stylization",
    "outpainting",
    "inpainting",
    "colorization",
    "canny_to_video",
    "depth_to_video",
    "depth_detection",
    "hed_to_video",
    "hed_detection",
    "scribble_to_video",
    "scribble_detection",
    "deblur",
    "upscale",
]


def test_registry_declares_the_18_spec_tasks_in_order():
    assert [t.id for t in TASKS] == SPEC_TASK_IDS
    assert [t.number for t in TASKS] == list(range(1, 19))
    assert 0.95 < sum(t.share for t in TASKS) < 1.02
    for task in TASKS:
        assert len(task.templates) >= 3, task.id
        assert task.source and task.target and task.made_by
        assert task.stage in STAGES


def test_registry_names_what_makes_each_task():
    # Every operator task's operator imports and names itself; every control task's kind is one
    # of the control stage's; every reversed task reverses a registered task of the expert stage.
    from senorita.control import KINDS

    for task in TASKS:
        if task.stage == "operator":
            assert operator_of(task.id).name, task.id
        if task.stage == "control":
            assert task.control in KINDS and task.controls == (task.control,)
        if task.reverses:
            assert get(task.reverses).stage == "expert"
        if task.stage in ("expert", "grounding"):
            assert task.needs_masks or task.id == "global_stylization"
    with pytest.raises(ValueError, match="names its operator"):
        Task("x", 19, "operator", "?", "a", "b", 0.0, ("Do it.",))
    with pytest.raises(ValueError, match="not one of"):
        Task("x", 19, "painter", "?", "a", "b", 0.0, ("Do it.",))
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        get("nope")


def test_enabled_tasks_follow_the_config():
    assert enabled_tasks({}) == [t.id for t in TASKS]
    assert "deblur" not in enabled_tasks({"deblur": {"enabled": False}})
    with pytest.raises(ValueError, match=r"tasks\.paint_it"):
        enabled_tasks({"paint_it": {"enabled": True}})
    # Object addition reverses object removal's pairs: it cannot run alone.
    with pytest.raises(ValueError, match=r"tasks\.object_addition\.enabled"):
        enabled_tasks({"object_removal": {"enabled": False}})


def test_shards_are_stable_and_spread():
    ids = [f"video-{i}" for i in range(4000)]
    shards = [shard_of(v, 8) for v in ids]
    assert shards == [shard_of(v, 8) for v in ids]
    counts = Counter(shards)
    assert set(counts) == set(range(8))
    assert max(counts.values()) < 1.25 * min(counts.values())
    assert derive_seed(0, "deblur", "c1") != derive_seed(0, "deblur", "c2")
    assert derive_seed(0, "deblur", "c1") == derive_seed(0, "deblur", "c1")
    # Stable across processes and machines (no Python hash): pinned values.
    assert [shard_of(f"video-{i}", 8) for i in range(6)] == [6, 4, 4, 5, 2, 5]
    assert derive_seed(0, "deblur", "c1") == 3997557661949411440


@pytest.mark.parametrize(
    ("shots", "per_video"),
    [([(0, 500)], 1), ([(0, 500)], 3), ([(0, 80), (80, 400), (400, 470)], 4), ([(0, 64)], 1)],
)
def test_windows_stay_inside_one_shot_and_never_overlap(shots, per_video):
    span, margin = 65, 3
    starts = choose_windows(shots, span, per_video, margin)
    assert len(starts) <= per_video
    for a, b in pairwise(starts):
        assert b >= a + span
    # Margins keep windows off cuts; the video's own first and last frames are no cut.
    first, last = shots[0][0], shots[-1][1]
    inner = [(s + margin * (s > first), e - margin * (e < last)) for s, e in shots]
    for start in starts:
        assert any(s <= start and start + span <= e for s, e in inner), start
    fits = sum(max(0, e - s) // span for s, e in inner)
    assert len(starts) == min(per_video, fits)


def test_instruction_draws_are_seeded_and_cover_every_template():
    seen = Counter()
    for i in range(400):
        a = draw_instruction("deblur", np.random.default_rng(i))
        assert a == draw_instruction("deblur", np.random.default_rng(i))
        seen[a[1]] += 1
        assert a[0] in TASKS_BY_ID["deblur"].templates
    assert len(seen) == len(TASKS_BY_ID["deblur"].templates)


def test_journal_survives_a_torn_last_line_and_is_removed_on_finish(tmp_path):
    table = tmp_path / "shard.parquet"
    journal = Journal(table)
    (tmp_path / "a.mp4").write_bytes(b"x")
    journal.record("a", {"path": "a.mp4", "n": 1})
    journal.record("b", {"path": "b.mp4", "n": 2})
    journal._fh.write('{"key": "c", "val')  # a job killed mid-write
    journal._fh.flush()
    resumed = Journal(table)
    assert resumed.get("a", tmp_path / "a.mp4") == {"path": "a.mp4", "n": 1}
    assert resumed.get("b", tmp_path / "b.mp4") is None  # its file is gone: redo it
    assert resumed.get("c") is None
    resumed.finish()
    assert not resumed.path.exists()
    assert prune(tmp_path, {"a.mp4"}) == 0
    (tmp_path / ".x.tmp.mp4").write_bytes(b"")
    assert prune(tmp_path, {"a.mp4"}) == 1


def test_a_write_killed_before_its_rename_leaves_nothing_once_the_path_is_written_again(tmp_path):
    import signal
    import subprocess
    import sys

    import pandas as pd

    from senorita.atomic import write_table, write_text

    # A real death between writing the temporary file and the rename.
    kill = (
        "import os, signal, sys\n"
        "from senorita.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    table, other = tmp_path / "00000.parquet", tmp_path / "00000.rejects.parquet"
    seen = []
    for path in (table, table, other):
        died = subprocess.run([sys.executable, "-c", kill, str(path)], check=False)
        assert died.returncode == -signal.SIGKILL
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
    # Each death leaves its temporary file; the second write of the table took the first's.
    assert len(seen[0]) == 1 and seen[0][0].startswith(".00000.parquet.") and ".tmp." in seen[0][0]
    assert len(seen[1]) == 1 and seen[1] != seen[0]
    assert len(seen[2]) == 2

    write_table(pd.DataFrame({"a": [1]}), table)
    # The table's two leftovers are gone; another path's leftover waits for its own write.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".00000.parquet.")) == []
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".00000.rejects")]) == 1
    write_text("x", other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.parquet", "00000.rejects.parquet"]


def test_tables_carry_their_provenance(tmp_path):
    import pandas as pd

    from senorita.atomic import read_provenance, write_table
    from senorita.provenance import redact, stage_provenance

    prov = stage_provenance("clips", shard=3, clips={"frames": 33}, api_key="s3cret")
    write_table(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.parquet", prov)
    back = read_provenance(tmp_path / "t.parquet")
    assert back["stage"] == "clips" and back["params"]["clips"] == {"frames": 33}
    assert back["code_version"].startswith("0.1.0")
    assert back["packages"]["pandas"] == pd.__version__
    assert "s3cret" not in str(back)
    # Words, not substrings: a count of tokens is no secret.
    assert redact({"max_clip_tokens": 77, "keyframes": 3, "hfToken": "t"}) == {
        "max_clip_tokens": 77,
        "keyframes": 3,
        "hfToken": "<redacted>",
    }
    assert redact({"pexels": {"API_KEY": "x", "token_file": "y", "n": [{"secret": 1}]}}) == {
        "pexels": {
            "API_KEY": "<redacted>",
            "token_file": "<redacted>",
            "n": [{"secret": "<redacted>"}],
        }
    }
    assert pd.read_parquet(tmp_path / "t.parquet")["a"].tolist() == [1, 2]


def test_the_ffmpeg_version_is_the_one_on_path_asked_once_per_binary(tmp_path, monkeypatch):
    from senorita.provenance import ffmpeg_version

    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    calls = tmp_path / "calls"
    fake.write_text(f'#!/bin/sh\necho x >> {calls}\necho "ffmpeg version fake-1"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert ffmpeg_version() == ffmpeg_version() == "ffmpeg version fake-1"
    assert calls.read_text() == "x\n"  # cached: the warm worker asks before forking the jobs
    # Another binary at the same path (a new size or time) is asked again.
    fake.write_text(f'#!/bin/sh\necho x >> {calls}\necho "ffmpeg version fake-22"\n')
    assert ffmpeg_version() == "ffmpeg version fake-22"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ffmpeg_version() == "absent"


def test_every_template_fits_the_default_word_limit_and_none_is_empty():
    slots = {
        "obj": "red car",
        "attribute": "bright yellow",
        "new": "wooden boat",
        "style": "van gogh",
    }
    lengths = []
    for task in TASKS:
        for index in range(len(task.templates)):
            rng = np.random.default_rng(0)
            while True:  # find a seed that draws this template
                text, template_id = draw_instruction(task.id, rng, max_words=12, **slots)
                if template_id == f"{task.id}/{index}":
                    break
            assert text.strip() and len(text.split()) <= 12
            lengths.append(len(text.split()))
    assert 2 <= sum(lengths) / len(lengths) <= 8  # short, like Señorita-2M's ~4 words
    with pytest.raises(ValueError, match="limit 3"):
        draw_instruction("deblur", np.random.default_rng(5), max_words=3, obj="x")


def test_every_subcommand_has_a_handler():
    from senorita.cli import HANDLERS, _parser

    subcommands = next(a for a in _parser()._actions if a.dest == "stage").choices
    assert set(subcommands) == set(HANDLERS)
