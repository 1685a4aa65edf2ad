"""Progress lines for long jobs: items done of total, rate and time left, at a steady rhythm.

A user tailing the log of a six-hour SLURM job sees it move. Lines go to the logging module (the
job's log file), never a terminal bar::

    progress = Progress("captions 00003", total=len(clips))
    for clip in clips:
        ...
        progress.step()          # or progress.step(n) for a batch
    progress.done()

Items found in a journal on resume count as done but not towards the rate (``skip``).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("senorita.progress")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None,
        every_s: float = 30.0,
        unit: str = "items",
        logger: logging.Logger | None = None,
    ):
        self.label, self.total, self.every_s, self.unit = label, total, every_s, unit
        self.log = logger or log
        self.count = 0  # done, including skipped
        self.worked = 0  # done in this run (the rate's numerator)
        self.start = self._last = time.monotonic()
        self._reported: int | None = None  # the count of the last line, so done() never repeats it

    def skip(self, n: int = 1) -> None:
        """``n`` items already done (resumed from a journal)."""
        self.count += n

    def step(self, n: int = 1) -> None:
        self.count += n
        self.worked += n
        if time.monotonic() - self._last >= self.every_s:
            self.report()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.worked / elapsed
        done = f"{self.count}/{self.total}" if self.total is not None else f"{self.count}"
        text = f"{self.label}: {done} {self.unit}, {rate:.3g}/s, elapsed {_duration(elapsed)}"
        if self.total is not None and rate > 0:
            text += f", left ~{_duration(max(self.total - self.count, 0) / rate)}"
        return text

    def report(self) -> None:
        self._last = time.monotonic()
        self._reported = self.count
        self.log.info("%s", self.line())

    def done(self) -> None:
        """The closing line, unless the last line already said the same."""
        if self._reported != self.count:
            self.report()
