"""Progress lines: done of total, rate and time left; resumed items don't inflate the rate."""

from __future__ import annotations

import logging

from senorita.progress import Progress


def test_lines_say_done_of_total_rate_and_time_left(caplog, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("senorita.progress.time.monotonic", lambda: now[0])
    with caplog.at_level(logging.INFO, logger="senorita.progress"):
        progress = Progress("clips 00003", total=5, every_s=5.0, unit="clips")
        progress.skip(1)  # resumed from the journal: done, but not worked in this run
        now[0] = 10.0
        progress.step()  # 2/5, 1 item in 10 s
        now[0] = 12.0
        progress.step()  # 3/5: 2 s after the last line, under the 5 s rhythm: no line
        now[0] = 20.0
        progress.done()  # 3/5, 2 items in 20 s
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "clips 00003: 2/5 clips, 0.1/s, elapsed 10s, left ~30s",
        "clips 00003: 3/5 clips, 0.1/s, elapsed 20s, left ~20s",
    ]
    progress.done()  # the last line said 3/5 already: no repeat
    assert len(caplog.records) == 2


def test_done_reports_what_the_rhythm_did_not(caplog):
    with caplog.at_level(logging.INFO, logger="senorita.progress"):
        progress = Progress("pages", total=None, every_s=3600.0)
        progress.step(7)
        progress.done()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("pages: 7 items, ") and "left" not in line
