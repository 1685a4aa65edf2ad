"""A loopback Pexels API: search, popular, pagination, quota headers, key check, video files.

It serves a deterministic catalogue of fake videos whose files are small real mp4s, and it can
inject the faults a real crawl meets. Page faults hit the n-th distinct page asked for (whatever
its endpoint), on its first request only, except ``malformed`` and ``missing_fields``, which that
page always has; video faults hit chosen video ids. ``Plan.dropped`` holds video ids whose file
requests the server drops (closes the connection without an answer) until the test empties it:
a file host that is down for a while. Every request is logged (``server.log``), with
no key in it, so tests can count what the crawler asked for.

Try the crawler without a key::

    python -m senorita.testing.pexels_server --port 8765 --videos 400 --faults
    PEXELS_API_KEY=loopback-key senorita catalogue --source '{...api_base: http://127.0.0.1:8765}'

(``--help`` prints a config snippet.)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PAGE_FAULTS = ("rate_limit", "server_error", "slow", "truncated", "malformed", "missing_fields")
VIDEO_FAULTS = (
    "corrupt",
    "offsite",
    "truncated_once",
    "truncated_always",
    "missing",
    "redirect_offsite",
    "corrupt_first",
)
# Faults after which the video is still good: downloaded after a retry, or in its next rendition
# (corrupt_first spoils only the first rendition, the smallest, whose file id ends in 0).
RECOVERABLE_VIDEO_FAULTS = ("truncated_once", "corrupt_first")


def make_media(
    folder: Path,
    count: int = 3,
    width: int = 96,
    height: int = 64,
    seconds: float = 3.0,
    fps: int = 24,
) -> list[Path]:
    """``count`` small distinct H.264 mp4 files made with ffmpeg's test sources."""
    folder.mkdir(parents=True, exist_ok=True)
    patterns = ["testsrc", "testsrc2", "smptebars", "rgbtestsrc", "smptehdbars", "pal75bars"]
    out = []
    for i in range(count):
        path = folder / f"base_{i}_{width}x{height}.mp4"
        if not path.exists():
            pattern = patterns[i % len(patterns)]
            src = f"{pattern}=size={width}x{height}:rate={fps}:duration={seconds}"
            subprocess.run(
                [
                    "ffmpeg",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-nostdin",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    src,
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-pix_fmt",
                    "yuv420p",
                    "-g",
                    str(fps),
                    str(path),
                ],
                check=True,
            )
        out.append(path)
    return out


@dataclass
class FakeVideo:
    id: int
    width: int
    height: int
    duration: int
    good: bool  # passes the default test filters (≥ 592x336, 3..60 s)

    def files(self, base: str, offsite: str | None) -> list[dict[str, Any]]:
        portrait = self.height > self.width
        sizes = [("sd", 640, 360), ("hd", 1280, 720), ("hd", 1920, 1080), ("uhd", 3840, 2160)]
        out = []
        for k, (quality, w, h) in enumerate(sizes):
            if max(w, h) > max(self.width, self.height):
                continue
            w, h = (h, w) if portrait else (w, h)
            fid = self.id * 10 + k
            host = offsite or base
            out.append(
                {
                    "id": fid,
                    "quality": quality,
                    "file_type": "video/mp4",
                    "width": w,
                    "height": h,
                    "fps": 25.0,
                    "link": f"{host}/video-files/{self.id}/{fid}.mp4",
                }
            )
        # Traps for the rendition choice: a webm and an HLS playlist.
        out.append(
            {
                "id": self.id * 10 + 7,
                "quality": "sd",
                "file_type": "video/webm",
                "width": 640,
                "height": 360,
                "fps": 25.0,
                "link": f"{base}/video-files/{self.id}/{self.id * 10 + 7}.webm",
            }
        )
        out.append(
            {
                "id": self.id * 10 + 8,
                "quality": "hls",
                "file_type": "video/mp4",
                "width": None,
                "height": None,
                "fps": None,
                "link": f"{base}/video-files/{self.id}/playlist.m3u8",
            }
        )
        return out


@dataclass
class Plan:
    """Which faults to inject. Page faults: {n: kind} for the n-th distinct page (1-based)."""

    page_faults: dict[int, str] = field(default_factory=dict)
    video_faults: dict[int, str] = field(default_factory=dict)
    slow_s: float = 1.5  # a "slow" page takes this long (more than the client's read timeout)
    reset_s: float = 1.0  # a 429 says the quota resets this far ahead
    page_delay_s: float = 0.0  # every API response takes this long (to kill a crawl mid-way)
    file_delay_s: float = 0.0  # every file response takes this long
    duplicate_id: int | None = None  # forced into every search's first page
    dropped: set[int] = field(default_factory=set)  # video ids whose file requests are dropped


def all_faults(videos: list[FakeVideo], seed: int = 0, newest: int = 30, per_kind: int = 2) -> Plan:
    """Every fault kind at least once. Video faults (``per_kind`` videos each) go to videos
    among the ``newest`` that pass the default filters: the popular list's first pages (newest
    first), so any crawl that reads that many of them meets them all."""
    rng = random.Random(seed)
    good = sorted((v.id for v in videos if v.good), reverse=True)[:newest]
    picks = rng.sample(good, per_kind * len(VIDEO_FAULTS) + 1)
    video_faults = {vid: VIDEO_FAULTS[i % len(VIDEO_FAULTS)] for i, vid in enumerate(picks[:-1])}
    page_faults = {
        2: "rate_limit",
        3: "server_error",
        4: "slow",
        5: "truncated",
        6: "malformed",
        7: "missing_fields",
        9: "server_error",
        10: "truncated",
    }
    return Plan(page_faults=page_faults, video_faults=video_faults, duplicate_id=picks[-1])


def fake_videos(count: int, seed: int = 0) -> list[FakeVideo]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        vid = 100_000 + i * 37 + rng.randrange(30)
        roll = rng.random()
        if roll < 0.08:
            w, h = 426, 240  # too small
        elif roll < 0.3:
            w, h = 1080, 1920  # portrait
        elif roll < 0.5:
            w, h = 3840, 2160
        else:
            w, h = 1920, 1080
        duration = 120 if rng.random() < 0.07 else rng.randrange(3, 41)
        good = min(w, h) >= 336 and max(w, h) >= 592 and 3 <= duration <= 60
        out.append(FakeVideo(vid, w, h, duration, good))
    return out


class PexelsServer:
    """Run with ``start()`` (a background thread) or as a context manager."""

    def __init__(
        self,
        media: list[Path],
        videos: list[FakeVideo],
        key: str,
        plan: Plan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        quota: int = 20_000,
    ):
        self.media = [p.read_bytes() for p in media]
        self.videos = videos
        self.by_id = {v.id: v for v in videos}
        self.key = key
        self.plan = plan or Plan()
        self.quota, self.remaining = quota, quota
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pages_seen: dict[tuple, int] = {}  # (endpoint, query, page) -> ordinal
        self._page_tries: dict[tuple, int] = {}
        self._file_tries: dict[int, int] = {}
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        # The same server under another name: the allowlist's "outside host".
        self.offsite = f"http://localhost:{self.port}"
        self._thread: threading.Thread | None = None

    # ---- catalogue views -------------------------------------------------------------------
    def search(self, query: str, orientation: str | None, size: str | None) -> list[FakeVideo]:
        digest = lambda v: hashlib.sha256(f"{query.lower()}/{v.id}".encode()).digest()[0]  # noqa: E731
        hits = [v for v in self.videos if digest(v) % 3 == 0]
        if self.plan.duplicate_id is not None and self.plan.duplicate_id in self.by_id:
            dup = self.by_id[self.plan.duplicate_id]
            hits = [dup] + [v for v in hits if v.id != dup.id]
        if orientation:
            hits = [v for v in hits if _orientation(v) == orientation]
        minimum = {"large": 3840, "medium": 1920, "small": 1280}.get(size or "", 0)
        return [v for v in hits if max(v.width, v.height) >= minimum]

    def popular(self, q: dict[str, str]) -> list[FakeVideo]:
        def num(name: str, default: int) -> int:
            return int(q.get(name, default))

        return [
            v
            for v in sorted(self.videos, key=lambda v: -v.id)
            if v.width >= num("min_width", 0)
            and v.height >= num("min_height", 0)
            and num("min_duration", 0) <= v.duration <= num("max_duration", 10**9)
        ]

    def video_json(self, v: FakeVideo) -> dict[str, Any]:
        fault = self.plan.video_faults.get(v.id)
        offsite = self.offsite if fault == "offsite" else None
        return {
            "id": v.id,
            "width": v.width,
            "height": v.height,
            "duration": v.duration,
            "url": f"https://www.pexels.com/video/fake-clip-{v.id}/",
            "image": f"https://images.pexels.com/videos/{v.id}/preview.jpeg",
            "full_res": None,
            "tags": [],
            "avg_color": None,
            "user": {
                "id": v.id % 997,
                "name": f"Author {v.id % 997}",
                "url": f"https://www.pexels.com/@author-{v.id % 997}",
            },
            "video_files": v.files(self.base, offsite),
            "video_pictures": [
                {
                    "id": v.id * 3,
                    "nr": 0,
                    "picture": f"https://images.pexels.com/videos/{v.id}/pic0.jpeg",
                }
            ],
        }

    # ---- requests ----------------------------------------------------------------------------
    def api_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.log if r["kind"] == "api"]

    def file_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.log if r["kind"] == "file"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                try:
                    parts = urlsplit(self.path)
                    if parts.path.startswith("/videos/"):
                        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                        server._api(self, parts.path, query)
                    elif parts.path.startswith("/video-files/"):
                        server._file(self, parts.path)
                    else:
                        server._send(self, 404, b'{"error": "not found"}')
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a slow response

        return Handler

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
        ctype: str = "application/json",
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if truncate:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body[: len(body) // 2] if truncate else body)
        if truncate:
            h.wfile.flush()
            h.close_connection = True

    def _api(self, h: BaseHTTPRequestHandler, path: str, q: dict[str, str]) -> None:
        endpoint = path.rstrip("/").rsplit("/", 1)[-1]
        page = int(q.get("page", 1))
        per_page = min(80, max(1, int(q.get("per_page", 15))))
        entry: dict[str, Any] = {
            "kind": "api",
            "endpoint": endpoint,
            "query": q.get("query"),
            "page": page,
            "per_page": per_page,
            "time": time.time(),
            "auth_ok": h.headers.get("Authorization") == self.key,
        }
        ident = (endpoint, tuple(sorted((k, v) for k, v in q.items() if k != "page")), page)
        with self._lock:
            self.log.append(entry)
            if not entry["auth_ok"]:
                entry.update(status=401, fault=None)
            else:
                ordinal = self._pages_seen.setdefault(ident, len(self._pages_seen) + 1)
                tries = self._page_tries[ident] = self._page_tries.get(ident, 0) + 1
                fault = self.plan.page_faults.get(ordinal)
                if fault not in ("malformed", "missing_fields") and tries > 1:
                    fault = None
                entry.update(ordinal=ordinal, fault=fault)
                if fault == "rate_limit":
                    self.remaining = 0
                else:
                    self.remaining = self.remaining - 1 if self.remaining > 0 else self.quota - 1
                remaining = self.remaining
        if not entry["auth_ok"]:
            self._send(h, 401, b'{"error": "Unauthorized"}')
            return
        fault = entry["fault"]
        if self.plan.page_delay_s:
            time.sleep(self.plan.page_delay_s)
        reset = time.time() + (self.plan.reset_s if fault == "rate_limit" else 30 * 86400)
        headers = {
            "X-Ratelimit-Limit": str(self.quota),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(int(reset + 0.999)),
        }
        if fault == "rate_limit":
            entry["status"] = 429
            self._send(h, 429, b'{"error": "Rate limit exceeded"}', headers)
            return
        if fault == "server_error":
            entry["status"] = 500
            self._send(h, 500, b'{"error": "Internal Server Error"}', headers)
            return
        if fault == "slow":
            time.sleep(self.plan.slow_s)
        if endpoint == "search":
            hits = self.search(q.get("query", ""), q.get("orientation"), q.get("size"))
        elif endpoint == "popular":
            hits = self.popular(q)
        else:
            entry["status"] = 404
            self._send(h, 404, b'{"error": "not found"}', headers)
            return
        chunk = hits[(page - 1) * per_page : page * per_page]
        body: dict[str, Any] = {
            "page": page,
            "per_page": per_page,
            "total_results": len(hits),
            "url": f"https://www.pexels.com/search/{q.get('query', '')}/",
            "videos": [self.video_json(v) for v in chunk],
        }
        if page * per_page < len(hits):
            body["next_page"] = f"{self.base}{path}?{urlencode({**q, 'page': page + 1})}"
        if page > 1:
            body["prev_page"] = f"{self.base}{path}?{urlencode({**q, 'page': page - 1})}"
        if fault == "missing_fields":
            body["videos"] = [
                {k: v for k, v in video.items() if k != "video_files"} if i % 2 == 0 else video
                for i, video in enumerate(body["videos"])
            ]
            if page % 2:
                del body["videos"]  # and some pages lack the list itself
        raw = json.dumps(body).encode()
        if fault == "malformed":
            raw = raw[: len(raw) // 3] + b"<html>oops"
        entry["status"] = 200
        entry["video_ids"] = [v.id for v in chunk]
        self._send(h, 200, raw, headers, truncate=fault == "truncated")

    def _file(self, h: BaseHTTPRequestHandler, path: str) -> None:
        parts = path.strip("/").split("/")
        host = (h.headers.get("Host") or "").split(":")[0]
        entry: dict[str, Any] = {"kind": "file", "path": path, "host": host, "time": time.time()}
        try:
            vid = int(parts[1])
            fid = int(parts[2].split(".")[0])
        except (IndexError, ValueError):
            vid = fid = -1
        entry.update(video_id=vid, file_id=fid)
        with self._lock:
            self.log.append(entry)
            tries = self._file_tries[fid] = self._file_tries.get(fid, 0) + 1
        video = self.by_id.get(vid)
        fault = self.plan.video_faults.get(vid)
        entry["fault"] = fault
        if self.plan.file_delay_s:
            time.sleep(self.plan.file_delay_s)
        if vid in self.plan.dropped:
            entry["status"] = "dropped"
            h.close_connection = True  # no status line: the client sees the connection drop
            return
        if video is None or fault == "missing" or not parts[2].endswith(".mp4"):
            entry["status"] = 404
            self._send(h, 404, b"not found", ctype="text/plain")
            return
        if fault == "redirect_offsite" and host != "localhost":
            entry["status"] = 302
            self._send(h, 302, b"", {"Location": f"{self.offsite}{path}"})
            return
        body = self.media[vid % len(self.media)]
        corrupt = fault == "corrupt" or (fault == "corrupt_first" and fid % 10 == 0)
        if corrupt:
            body = random.Random(vid).randbytes(len(body))
        truncate = fault == "truncated_always" or (fault == "truncated_once" and tries == 1)
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
        entry["status"] = 200
        entry["complete"] = not truncate and not corrupt  # a whole, good file
        self._send(h, 200, body, headers, truncate=truncate, ctype="video/mp4")

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> PexelsServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> PexelsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def source_config(self, **overrides: Any) -> dict[str, Any]:
        """A ``source.pexels`` config section that points at this server."""
        cfg: dict[str, Any] = {
            "api_base": self.base,
            "requests_per_hour": 1_000_000,
            "backoff_s": 0.05,
            "backoff_max_s": 0.5,
            "read_timeout_s": 1.0,
            "connect_timeout_s": 1.0,
            "max_wait_s": 30,
            "download": {
                "allowed_hosts": [f"127.0.0.1:{self.port}"],
                "allow_http": True,
                "workers": 4,
                "retries": 2,
            },
        }
        for k, v in overrides.items():
            if k == "download":
                cfg["download"].update(v)
            else:
                cfg[k] = v
        return cfg


def _orientation(v: FakeVideo) -> str:
    return "landscape" if v.width > v.height else "portrait" if v.height > v.width else "square"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument("--key", default=os.environ.get("PEXELS_API_KEY", "loopback-key"))
    parser.add_argument("--media", type=Path, default=Path("results/loopback-media"))
    parser.add_argument("--size", default="640x360", help="size of the served mp4 files")
    parser.add_argument("--faults", action="store_true", help="inject every fault kind")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    media = make_media(args.media, 3, width, height, seconds=4.0)
    videos = fake_videos(args.videos)
    plan = all_faults(videos) if args.faults else Plan()
    server = PexelsServer(media, videos, args.key, plan, port=args.port)
    cfg = server.source_config()
    print(f"loopback Pexels API at {server.base} (key: the one you passed or PEXELS_API_KEY)")
    print("config:\n" + json.dumps({"source": {"kind": "pexels", "pexels": cfg}}, indent=2))
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()


if __name__ == "__main__":
    main()
