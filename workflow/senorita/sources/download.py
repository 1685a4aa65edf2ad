"""Downloading video files: allowlisted hosts, streamed to a temporary file, verified, renamed.

A file appears under its final name only when it is complete (length as announced, checksum as
announced where the server sends one) and ffprobe reads a video stream from it, so a killed job
leaves either nothing or a finished file; a rerun skips finished files. Every failure becomes a
reason string that starts with its kind ("download refused", "download failed", "download too
large", "download corrupt", ...), and is one of three sorts:

- transient: the host or the network had a bad moment (connection refused or dropped, timeout,
  429, 5xx), still so after the retries. Not a verdict about the video: the next run tries again.
- bad file: the file the host sends is not a usable video, every time (corrupt, or shorter than
  its announced length, or not matching its checksum, on every try). The caller may try another
  rendition of the same video once; after that it is a reject.
- permanent: 404 and other refusals, a host not on the allowlist, too large, wrong codec. A reject.

Download links come from API data, which we don't trust to send us anywhere: the scheme and host
of the link and of every redirect must match the configured allowlist, and the local file name is
made by the caller from ids only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from senorita.atomic import atomic_path
from senorita.progress import Progress
from senorita.sources.pexels_api import TRANSIENT as TRANSPORT_ERRORS
from senorita.sources.pexels_api import TRANSIENT_STATUS, backoff_delay, make_session
from senorita.video import VideoError, probe

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_REDIRECTS = 5


TRANSIENT, BAD_FILE, PERMANENT = "transient", "bad file", "permanent"


class DownloadError(OSError):
    """A failed download; ``str(err)`` is the reason, ``kind`` its sort (see the module doc)."""

    def __init__(self, reason: str, kind: str = PERMANENT):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    @property
    def transient(self) -> bool:
        return self.kind == TRANSIENT

    def __str__(self) -> str:
        return self.reason


class Failure(str):
    """A failed download's reason (a str, usable as a reject reason as is) with its ``kind``."""

    kind: str

    def __new__(cls, reason: str, kind: str) -> Failure:
        obj = super().__new__(cls, reason)
        obj.kind = kind
        return obj


def host_allowed(url: str, hosts: Iterable[str], allow_http: bool) -> str | None:
    """None if ``url`` may be fetched, else why not.

    An allowlist entry matches its host and its subdomains; an entry with a port matches only
    that port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        return f"scheme '{parts.scheme}' not allowed"
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or parts.username or parts.password:
        return "no host, or credentials in the URL"
    for entry in hosts:
        name, _, want_port = entry.lower().partition(":")
        if (host == name or host.endswith("." + name)) and (
            not want_port or str(port) == want_port
        ):
            return None
    return f"host '{host}' not in source.pexels.download.allowed_hosts"


@dataclass
class Downloaded:
    path: Path
    bytes: int
    sha256: str
    fresh: bool  # False when an earlier run had finished it


class Downloader:
    """Fetch files concurrently with one pooled session (no API key: downloads need none)."""

    def __init__(
        self,
        cfg: dict[str, Any],
        timeouts: tuple[float, float],
        backoff: tuple[float, float],
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ):
        self.workers = cfg["workers"]
        self.retries = cfg["retries"]
        self.max_bytes = cfg["max_bytes"]
        self.time_limit = cfg["timeout_s"]
        self.hosts = cfg["allowed_hosts"]
        self.allow_http = cfg["allow_http"]
        self.codecs = cfg.get("codecs")
        self.timeouts = timeouts
        self.backoff = backoff
        self.session = session or make_session(self.workers)
        self.sleep = sleep
        self.rng = random.Random(seed)

    def _check(self, url: str) -> None:
        if (why := host_allowed(url, self.hosts, self.allow_http)) is not None:
            raise DownloadError(f"download refused: {why}")

    def _open(self, url: str) -> requests.Response:
        """GET with redirects followed by hand, each hop checked against the allowlist."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check(url)
            resp = self.session.get(url, stream=True, timeout=self.timeouts, allow_redirects=False)
            if resp.is_redirect and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                resp.close()
                continue
            return resp
        raise DownloadError(f"download failed: more than {MAX_REDIRECTS} redirects")

    def _attempt(self, url: str, dest: Path) -> Downloaded:
        started = time.monotonic()
        resp = self._open(url)
        with resp:
            if resp.status_code == 429 or resp.status_code >= 500:
                raise DownloadError(f"download failed: HTTP {resp.status_code}", TRANSIENT)
            if resp.status_code != 200:
                raise DownloadError(
                    f"download failed: HTTP {resp.status_code}",
                    TRANSIENT if resp.status_code in TRANSIENT_STATUS else PERMANENT,
                )
            announced = resp.headers.get("Content-Length")
            length = int(announced) if announced and announced.isdigit() else None
            if length is not None and length > self.max_bytes:
                raise DownloadError(
                    f"download too large: {length} bytes announced "
                    f"(source.pexels.download.max_bytes is {self.max_bytes})"
                )
            md5_header = resp.headers.get("Content-MD5")
            sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
            with atomic_path(dest) as tmp:
                with open(tmp, "wb") as fh:
                    for block in resp.iter_content(CHUNK):
                        size += len(block)
                        if size > self.max_bytes:
                            raise DownloadError(f"download too large: over {self.max_bytes} bytes")
                        if time.monotonic() - started > self.time_limit:
                            raise DownloadError(
                                f"download too slow: over {self.time_limit} s", TRANSIENT
                            )
                        sha.update(block)
                        md5.update(block)
                        fh.write(block)
                if length is not None and size != length:
                    raise DownloadError(f"download truncated: {size} of {length} bytes", BAD_FILE)
                if size == 0:
                    raise DownloadError("download failed: empty body", BAD_FILE)
                if md5_header and base64.b64encode(md5.digest()).decode() != md5_header.strip():
                    raise DownloadError("download checksum mismatch: Content-MD5 differs", BAD_FILE)
                try:
                    info = probe(tmp)
                except VideoError as err:
                    # ffprobe names the temporary file; the reason should not.
                    why = str(err).replace(f"{tmp}: ", "").replace(str(tmp), dest.name)
                    raise DownloadError(f"download corrupt: ffprobe: {why}", BAD_FILE) from None
                if self.codecs and info.codec not in self.codecs:
                    raise DownloadError(
                        f"download wrong codec: {info.codec} not in "
                        f"source.pexels.download.codecs {self.codecs}"
                    )
        return Downloaded(dest, size, sha.hexdigest(), fresh=True)

    def fetch(self, url: str, dest: Path) -> Downloaded:
        """Download ``url`` to ``dest``, unless a finished file is there; raise DownloadError.

        Transient failures and short or mismatching bodies are retried. After the last try the
        error is a bad file if every try delivered a short or mismatching body (the host keeps
        sending that), else transient (at least once the host or network failed as such).
        """
        if dest.is_file():
            return Downloaded(dest, dest.stat().st_size, "", fresh=False)
        self._check(url)
        attempt = 0
        kinds: set[str] = set()
        while True:
            try:
                return self._attempt(url, dest)
            except DownloadError as err:
                if err.kind == PERMANENT or err.reason.startswith("download corrupt"):
                    raise
                why, kind = err.reason, err.kind
            except requests.exceptions.ChunkedEncodingError:
                why = "download truncated: the connection closed before the announced length"
                kind = BAD_FILE
            except TRANSPORT_ERRORS as err:
                why, kind = f"download failed: {type(err).__name__}", TRANSIENT
            kinds.add(kind)
            if attempt >= self.retries:
                raise DownloadError(
                    f"{why} (gave up after {attempt + 1} tries)",
                    BAD_FILE if kinds == {BAD_FILE} else TRANSIENT,
                )
            delay = backoff_delay(attempt, *self.backoff, self.rng)
            log.info(
                "%s: %s; retry %d/%d in %.2f s", dest.name, why, attempt + 1, self.retries, delay
            )
            self.sleep(delay)
            attempt += 1

    def fetch_many(
        self, jobs: dict[str, tuple[str, Path]], label: str = "downloads"
    ) -> dict[str, Downloaded | Failure]:
        """Download every ``key: (url, dest)`` with ``workers`` threads; failures as Failure
        reasons. Logs progress (files done of total, rate, time left) as files finish."""

        def one(key: str, url: str, dest: Path) -> Downloaded | Failure:
            try:
                return self.fetch(url, dest)
            except DownloadError as err:
                log.warning("%s: %s (%s)", key, err.reason, err.kind)
                return Failure(err.reason, err.kind)
            except OSError as err:  # disk full, permissions: this host's problem, not the video's
                log.warning("%s: %s", key, err)
                return Failure(f"download failed: {err}", TRANSIENT)

        progress = Progress(label, total=len(jobs), unit="files")
        out: dict[str, Downloaded | Failure] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            futures = {pool.submit(one, k, url, dest): k for k, (url, dest) in jobs.items()}
            for future in as_completed(futures):
                out[futures[future]] = got = future.result()
                if isinstance(got, Downloaded) and not got.fresh:
                    progress.skip()
                else:
                    progress.step()
        progress.done()
        return {k: out[k] for k in jobs}


def clean_partials(folder: Path) -> int:
    """Remove temporary files left by a killed job (atomic_path names them ``.<name>.*.tmp*``)."""
    removed = 0
    if folder.is_dir():
        for path in folder.glob(".*.tmp*"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
