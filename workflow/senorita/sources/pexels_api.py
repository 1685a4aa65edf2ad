"""The Pexels API client: authentication, quota pacing, retries, and page parsing.

The API allows 200 requests an hour by default (and a monthly quota that the
``X-Ratelimit-*`` headers describe), so the client spaces requests evenly to a configured hourly
budget, waits for the reset time when the quota is spent or a 429 arrives, and retries server
errors, timeouts, dropped connections and truncated bodies with exponential backoff and jitter.
A page that arrives whole but cannot be understood (bad JSON, missing fields) is not retried: it
is reported to the caller, which records it as skipped.

The API key is sent in the ``Authorization`` header and nowhere else; messages this module
produces never contain it (``redact`` scrubs anything that might). It comes from the environment:
``PEXELS_API_KEY`` itself, or ``PEXELS_API_KEY_FILE``, the path of a file only its owner can read
(the convention of container secrets), and is never written to disk by the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

KEY_ENV = "PEXELS_API_KEY"
KEY_FILE_ENV = "PEXELS_API_KEY_FILE"


class PexelsError(OSError):
    """The crawl cannot go on now (it keeps its progress; a rerun resumes)."""


class QuotaExhausted(PexelsError):
    """The quota resets later than the configured longest wait."""


class AuthError(PexelsError):
    """The API refused the key."""


class RetriesExhausted(PexelsError):
    """A request kept failing with transient errors."""


class KeyFileError(PexelsError):
    """``PEXELS_API_KEY_FILE`` names a file that is missing, empty or readable by others."""


def api_key() -> str | None:
    """The key from ``PEXELS_API_KEY``, else from the file ``PEXELS_API_KEY_FILE`` names.

    The file must be readable by its owner only (mode 600 or 400): a key that others on the
    machine can read is refused rather than used.
    """
    if key := os.environ.get(KEY_ENV, "").strip():
        return key
    name = os.environ.get(KEY_FILE_ENV, "").strip()
    if not name:
        return None
    path = os.path.expanduser(name)
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as fh:
            key = fh.read().strip()
    except OSError as err:
        raise KeyFileError(f"{KEY_FILE_ENV}: cannot read {path}: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{KEY_FILE_ENV}: {path} can be read or written by group or others "
            f"(mode {stat.S_IMODE(mode):o}); `chmod 600 {path}` and run again"
        )
    if not key:
        raise KeyFileError(f"{KEY_FILE_ENV}: {path} is empty")
    return key


def redact(text: str, key: str | None) -> str:
    """``text`` with every occurrence of the key replaced (belt and braces for messages)."""
    return text.replace(key, "[PEXELS_API_KEY]") if key else text


class RedactFilter(logging.Filter):
    """A logging filter that scrubs the key from every record passing through a handler."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.key in message:
            record.msg, record.args = redact(message, self.key), ()
        return True


def install_redaction(key: str) -> None:
    """Scrub the key from everything the root logger's handlers write."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactFilter) and f.key == key for f in handler.filters):
            handler.addFilter(RedactFilter(key))


def make_session(pool: int) -> requests.Session:
    """A session with a connection pool of ``pool`` and no hidden urllib3 retries (ours count)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# Transport failures worth another try: the server or the network had a bad moment.
TRANSIENT = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


# Statuses below 500 that say "not now" rather than "no": retried like a 5xx.
TRANSIENT_STATUS = (408, 425)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2**attempt))


@dataclass
class Quota:
    """What the last response said about the quota."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds

    def update(self, headers: Any) -> None:
        for name, attr in (
            ("X-Ratelimit-Limit", "limit"),
            ("X-Ratelimit-Remaining", "remaining"),
            ("X-Ratelimit-Reset", "reset"),
        ):
            value = headers.get(name)
            if value is None:
                continue
            try:
                number = float(value)
            except ValueError:
                continue
            setattr(self, attr, number if attr == "reset" else int(number))


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)


class PexelsClient:
    """GET JSON from the API, paced to the hourly budget, retrying transient failures."""

    def __init__(
        self,
        cfg: dict[str, Any],
        key: str,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ):
        if not key:
            raise AuthError(f"{KEY_ENV} is empty")
        self.base = cfg["api_base"].rstrip("/")
        self.key = key
        self.interval = 3600.0 / cfg["requests_per_hour"]
        self.retries = cfg["retries"]
        self.backoff = (cfg["backoff_s"], cfg["backoff_max_s"])
        self.timeout = (cfg["connect_timeout_s"], cfg["read_timeout_s"])
        self.max_wait = cfg["max_wait_s"]
        self.session = session or make_session(1)
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.rng = random.Random(seed)
        self.quota = Quota()
        self.stats = Stats()
        self._next_slot: float | None = None

    def not_before(self, epoch: float) -> None:
        """Hold the first request until ``epoch`` (a restarted crawl keeps the budget's pace)."""
        self._next_slot = self.clock() + max(0.0, epoch - self.wall())

    def _wait(self, seconds: float, why: str) -> None:
        if seconds <= 0:
            return
        if seconds > self.max_wait:
            raise QuotaExhausted(
                f"{why}: the quota resets in {seconds:.0f} s, more than source.pexels.max_wait_s "
                f"({self.max_wait:.0f} s); the crawl keeps its progress, rerun it later"
            )
        log.info("%s: waiting %.1f s", why, seconds)
        self.stats.waited_s += seconds
        self.sleep(seconds)

    def _pace(self) -> None:
        """Hold the request until the hourly budget and the API's quota allow it."""
        now = self.clock()
        if self._next_slot is not None and self._next_slot > now:
            self.sleep(self._next_slot - now)
            self.stats.waited_s += self._next_slot - now
        if self.quota.remaining is not None and self.quota.remaining <= 0:
            reset = self.quota.reset if self.quota.reset is not None else self.wall() + 60
            self._wait(reset - self.wall(), "API quota spent (X-Ratelimit-Remaining: 0)")
            self.quota.remaining = None  # unknown until the next response says
        self._next_slot = self.clock() + self.interval

    def _retry(self, attempt: int, what: str, why: str) -> None:
        self.stats.retries += 1
        self.stats.failures[why.split(":")[0]] = self.stats.failures.get(why.split(":")[0], 0) + 1
        delay = backoff_delay(attempt, *self.backoff, self.rng)
        log.warning("%s: %s; retry %d/%d in %.2f s", what, why, attempt + 1, self.retries, delay)
        self.sleep(delay)

    def get(self, path: str, params: dict[str, Any], what: str) -> tuple[int, bytes]:
        """GET ``path``; return (status, body) of the first non-transient answer.

        Raises RetriesExhausted after ``retries`` transient failures, QuotaExhausted when the
        quota resets too far ahead, AuthError when the key is refused.
        """
        url = f"{self.base}{path}"
        attempt = 0
        while True:
            self._pace()
            self.stats.requests += 1
            try:
                resp = self.session.get(
                    url,
                    params=params,
                    headers={"Authorization": self.key},
                    timeout=self.timeout,
                    allow_redirects=False,
                )
                body = resp.content  # reads it all: a truncated body raises here
            except TRANSIENT as err:
                why = f"{type(err).__name__}: {redact(str(err), self.key)}"
            else:
                self.quota.update(resp.headers)
                status = resp.status_code
                if status == 429:
                    # Not the server's fault: wait for the reset, without spending a retry.
                    self.stats.rate_limited += 1
                    reset = self.quota.reset
                    wait = (
                        (reset - self.wall())
                        if reset
                        else backoff_delay(attempt, *self.backoff, self.rng)
                    )
                    self._wait(max(wait, 0.0) + 0.05, f"{what}: HTTP 429 (rate limited)")
                    self.quota.remaining = None
                    if self.stats.rate_limited > 10 * (self.retries + 1):
                        raise QuotaExhausted(f"{what}: still rate limited after many waits")
                    continue
                if status in (401, 403):
                    raise AuthError(f"{what}: HTTP {status}: the API refused the key in {KEY_ENV}")
                if status < 500 and status not in TRANSIENT_STATUS:
                    return status, body
                why = f"HTTP {status}"
            if attempt >= self.retries:
                raise RetriesExhausted(f"{what}: gave up after {attempt + 1} tries ({why})")
            self._retry(attempt, what, why)
            attempt += 1


REQUIRED_VIDEO = ("id", "width", "height", "duration", "url", "user", "video_files")


@dataclass
class Page:
    videos: list[dict[str, Any]]
    skipped: list[dict[str, Any]]  # videos on the page that lacked fields: {"id", "reason"}
    total_results: int | None
    has_next: bool
    error: str | None = None  # set when the whole page was unusable


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def normalise_video(video: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The fields we keep of one API video, or a reason it is unusable."""
    if not isinstance(video, dict):
        return None, "not an object"
    missing = [k for k in REQUIRED_VIDEO if video.get(k) is None]
    if missing:
        return None, f"missing {', '.join(missing)}"
    vid = _int(video["id"])
    if vid is None or vid <= 0:
        return None, "id is not a positive integer"
    user = video["user"] if isinstance(video["user"], dict) else {}
    files = []
    for f in video["video_files"] if isinstance(video["video_files"], list) else []:
        if not isinstance(f, dict):
            continue
        files.append(
            {
                "id": _int(f.get("id")),
                "quality": f.get("quality"),
                "file_type": f.get("file_type"),
                "width": _int(f.get("width")),
                "height": _int(f.get("height")),
                "fps": f.get("fps") if isinstance(f.get("fps"), int | float) else None,
                "link": f.get("link") if isinstance(f.get("link"), str) else None,
            }
        )
    try:
        width, height = int(video["width"]), int(video["height"])
        duration = float(video["duration"])
    except (TypeError, ValueError):
        return None, "width, height or duration is not a number"
    return {
        "id": vid,
        "width": width,
        "height": height,
        "duration": duration,
        "url": str(video["url"]),
        "author": user.get("name"),
        "author_url": user.get("url"),
        "video_files": files,
    }, None


def parse_page(body: bytes) -> Page:
    """Read one search/popular page; a page we cannot use comes back with ``error`` set."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return Page([], [], None, True, error=f"malformed JSON: {err}")
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        return Page([], [], None, True, error="missing field: videos")
    videos, skipped = [], []
    for raw in data["videos"]:
        video, reason = normalise_video(raw)
        if video is None:
            vid = raw.get("id") if isinstance(raw, dict) else None
            skipped.append({"id": vid if isinstance(vid, int | str) else None, "reason": reason})
        else:
            videos.append(video)
    total = _int(data.get("total_results"))
    has_next = bool(data.get("next_page")) and bool(data["videos"])
    return Page(videos, skipped, total, has_next)
