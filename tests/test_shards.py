"""The shard runner every per-shard stage uses: resume, rejects, provenance, prune."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from senorita.atomic import read_provenance
from senorita.ingest import REJECT_COLUMNS
from senorita.shards import Outcome, Reject, run_shard

COLUMNS = ["clip_id", "video_id", "part", "file", "value"]
PROVENANCE = {"stage": "test", "params": {"n": 1}}

# What the toy stage does with each item, by clip id.
#   row: one row and one file; two: two rows (two files); part: a row and a reject of a part;
#   bad: a reject; quiet: skipped with no reject row; skip: not drawn (no work at all).
KINDS = ["row", "bad", "two", "skip", "row", "quiet", "part", "row", "bad", "two"]
ITEMS = [
    {"clip_id": f"c{i}-{kind}", "video_id": f"v{i}", "path": f"/clips/c{i}.mp4"}
    for i, kind in enumerate(KINDS)
]


class Toy:
    """A stage's per-item function: counts the items it worked on, dies after ``die_after``."""

    def __init__(self, media: Path, die_after: int | None = None, exc: type = KeyboardInterrupt):
        self.media, self.die_after, self.exc = media, die_after, exc
        self.calls: list[str] = []  # items worked on (not drawn ones are not work)

    def row(self, item: dict, part: int = 0) -> dict:
        name = f"{item['clip_id']}.{part}.txt"
        (self.media / name).write_text(item["clip_id"])
        value = len(item["clip_id"]) + part / 4
        return {"clip_id": item["clip_id"], "video_id": item["video_id"], "part": part,
                "file": name, "value": value}  # fmt: skip

    def __call__(self, item: dict):
        kind = item["clip_id"].split("-")[1]
        if kind == "skip":
            return None
        if self.die_after is not None and len(self.calls) == self.die_after:
            raise self.exc("killed")
        self.calls.append(item["clip_id"])
        self.media.mkdir(parents=True, exist_ok=True)
        if kind == "bad":
            raise Reject(f"cannot use {item['clip_id']}")
        if kind == "quiet":
            raise Reject("another stage said why", record=False)
        if kind == "two":
            return [self.row(item, 0), self.row(item, 1)]
        if kind == "part":
            return Outcome([self.row(item)], ["part 1 failed"])
        return self.row(item)


def run(root: Path, work: Toy, **kwargs) -> pd.DataFrame:
    return run_shard(
        "toy",
        3,
        ITEMS,
        work,
        out=root / "table.parquet",
        rejects_out=root / "rejects.parquet",
        columns=COLUMNS,
        provenance=PROVENANCE,
        files=lambda row: [root / "media" / row["file"]],
        media=root / "media",
        **kwargs,
    )


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> dict:
    """One uninterrupted run: what every resumed run must end with."""
    root = tmp_path_factory.mktemp("whole")
    work = Toy(root / "media")
    table = run(root, work)
    return {"root": root, "table": table, "rejects": pd.read_parquet(root / "rejects.parquet")}


WORKED = [item["clip_id"] for item in ITEMS if not item["clip_id"].endswith("skip")]


def test_an_uninterrupted_run_writes_rows_rejects_and_provenance(whole):
    table, rejects, root = whole["table"], whole["rejects"], whole["root"]
    assert list(table.columns) == COLUMNS
    # Rows in item order; several per item where the work gave several.
    assert list(table["clip_id"]) == [
        "c0-row", "c2-two", "c2-two", "c4-row", "c6-part", "c7-row", "c9-two", "c9-two"
    ]  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(root / "table.parquet"), table)
    assert list(rejects.columns) == REJECT_COLUMNS
    assert rejects.to_dict("records") == [
        {"video_id": "v1", "shard": 3, "stage": "toy", "path": "/clips/c1.mp4",
         "reason": "cannot use c1-bad"},
        {"video_id": "v6", "shard": 3, "stage": "toy", "path": "/clips/c6.mp4",
         "reason": "part 1 failed"},
        {"video_id": "v8", "shard": 3, "stage": "toy", "path": "/clips/c8.mp4",
         "reason": "cannot use c8-bad"},
    ]  # fmt: skip
    assert read_provenance(root / "table.parquet") == PROVENANCE
    assert read_provenance(root / "rejects.parquet") == PROVENANCE
    assert not (root / "table.parquet.journal.jsonl").exists()
    assert sorted(p.name for p in (root / "media").iterdir()) == sorted(table["file"])


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("die_after", [1, 4, 6])
def test_a_killed_run_resumes_without_redoing_items_or_rejects(whole, tmp_path, die_after, exc):
    first = Toy(tmp_path / "media", die_after=die_after, exc=exc)
    with pytest.raises(exc):
        run(tmp_path, first)
    assert not (tmp_path / "table.parquet").exists()
    journal = tmp_path / "table.parquet.journal.jsonl"
    assert len(journal.read_text().splitlines()) == die_after  # rejects journaled too
    done = set(first.calls)
    again = Toy(tmp_path / "media")
    table = run(tmp_path, again)
    assert again.calls == [c for c in WORKED if c not in done]  # nothing redone, rejects neither
    pd.testing.assert_frame_equal(table, whole["table"])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "rejects.parquet"), whole["rejects"])
    assert not journal.exists()


def test_a_process_killed_mid_shard_resumes(whole, tmp_path):
    """A real, unannounced death (os._exit: no cleanup, no exception handlers)."""
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        import test_shards

        root = Path({str(tmp_path)!r})
        work = test_shards.Toy(root / "media")
        real = work.__call__

        def dies(item):
            if len(work.calls) == 5:
                os._exit(9)
            return real(item)

        test_shards.run(root, dies)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    journal = tmp_path / "table.parquet.journal.jsonl"
    done = [json.loads(line)["key"] for line in journal.read_text().splitlines()]
    assert done == WORKED[:5]
    again = Toy(tmp_path / "media")
    table = run(tmp_path, again)
    assert again.calls == WORKED[5:]
    pd.testing.assert_frame_equal(table, whole["table"])


def test_an_item_whose_file_vanished_is_redone(whole, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, Toy(tmp_path / "media", die_after=4))
    (tmp_path / "media" / "c2-two.1.txt").unlink()  # one of an item's two files
    again = Toy(tmp_path / "media")
    table = run(tmp_path, again)
    assert again.calls == ["c2-two", *WORKED[4:]]
    pd.testing.assert_frame_equal(table, whole["table"])


def test_stale_files_are_pruned_and_old_journal_entries_redone(whole, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "gone-clip.0.txt").write_text("a row of an earlier run")
    (media / ".c0-row.0.txt.abc.tmp").write_text("a killed job's temp file")
    # An entry in another format (an older version of the stage): redone, not misread.
    journal = tmp_path / "table.parquet.journal.jsonl"
    journal.write_text(json.dumps({"key": "c0-row", "value": {"clips": []}}) + "\n")
    work = Toy(media)
    table = run(tmp_path, work)
    assert work.calls == WORKED
    pd.testing.assert_frame_equal(table, whole["table"])
    assert sorted(p.name for p in media.iterdir()) == sorted(table["file"])


def test_batches_go_to_prepare_before_their_items(whole, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, Toy(tmp_path / "media", die_after=3))
    batches = []
    work = Toy(tmp_path / "media")

    def prepare(items):
        batches.append([i["clip_id"] for i in items])
        assert work.calls == [c for b in batches[:-1] for c in b if not c.endswith("skip")]

    table = run(tmp_path, work, batch=3, prepare=prepare)
    pending = [i["clip_id"] for i in ITEMS if i["clip_id"] not in WORKED[:3]]
    assert batches == [pending[k : k + 3] for k in range(0, len(pending), 3)]
    pd.testing.assert_frame_equal(table, whole["table"])


def test_an_error_outside_errors_fails_the_job_and_keeps_the_journal(tmp_path):
    def work(item):
        if item["clip_id"] == "c2-two":
            raise ValueError("a bug, not a bad clip")
        return None if item["clip_id"].endswith("skip") else Toy(tmp_path / "m").row(item)

    (tmp_path / "m").mkdir()
    with pytest.raises(ValueError, match="a bug, not a bad clip"):
        run(tmp_path, work, errors=(Reject,))
    assert not (tmp_path / "table.parquet").exists()
    keys = [json.loads(x)["key"] for x in (tmp_path / "table.parquet.journal.jsonl").open()]
    assert keys == ["c0-row", "c1-bad"]
