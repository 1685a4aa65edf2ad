"""The Pexels source's parts alone: rendition choice, allowlist, filters, pacing, parsing."""

from __future__ import annotations

import json
import logging

import pytest
from pexels_helpers import KEY, full_config

from senorita.sources.download import host_allowed
from senorita.sources.pexels import (
    Crawler,
    PageStore,
    choose_rendition,
    endpoints,
    load_queries,
    rejection,
)
from senorita.sources.pexels_api import (
    AuthError,
    PexelsClient,
    QuotaExhausted,
    RedactFilter,
    RetriesExhausted,
    Stats,
    parse_page,
)


def _file(fid, w, h, ftype="video/mp4", quality="hd", link=None):
    return {
        "id": fid,
        "width": w,
        "height": h,
        "file_type": ftype,
        "quality": quality,
        "link": link or f"https://videos.pexels.com/video-files/1/{fid}.mp4",
    }


FILES = [
    _file(1, 3840, 2160, quality="uhd"),
    _file(2, 1280, 720),
    _file(3, 640, 360, quality="sd"),
    _file(4, 426, 240, quality="sd"),
    _file(5, 1920, 1080),
    _file(6, 640, 360, ftype="video/webm", quality="sd"),
    {
        "id": 7,
        "width": None,
        "height": None,
        "file_type": "video/mp4",
        "quality": "hls",
        "link": "https://videos.pexels.com/x/playlist.m3u8",
    },
]


def test_rendition_is_the_smallest_covering_not_the_largest():
    assert choose_rendition(FILES, 592, 336, ["video/mp4"])["id"] == 3
    assert choose_rendition(FILES, 1000, 600, ["video/mp4"])["id"] == 2
    assert choose_rendition(FILES, 1920, 1080, ["video/mp4"])["id"] == 5


def test_rendition_handles_portrait_and_falls_back_to_largest():
    portrait = [_file(1, 360, 640), _file(2, 720, 1280), _file(3, 240, 426)]
    assert choose_rendition(portrait, 592, 336, ["video/mp4"])["id"] == 1
    small = [_file(1, 426, 240), _file(2, 320, 180)]
    assert choose_rendition(small, 592, 336, ["video/mp4"])["id"] == 1  # nothing covers: largest


def test_rendition_type_preference_and_no_playlists():
    assert choose_rendition(FILES, 592, 336, ["video/webm", "video/mp4"])["id"] == 6
    only_hls = [FILES[-1], _file(8, 640, 360, link="https://videos.pexels.com/a/b.m3u8")]
    assert choose_rendition(only_hls, 592, 336, ["video/mp4"]) is None
    webm = [_file(9, 640, 360, ftype="video/webm")]
    assert choose_rendition(webm, 592, 336, ["video/mp4"]) is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://videos.pexels.com/video-files/1/2.mp4", True),
        ("https://cdn.videos.pexels.com/a.mp4", True),
        ("https://videos.pexels.com.evil.example/a.mp4", False),
        ("https://evilvideos.pexels.com.example/a.mp4", False),
        ("https://notvideos.pexels.com/a.mp4", False),
        ("http://videos.pexels.com/a.mp4", False),  # plain http not allowed by default
        ("https://user:pw@videos.pexels.com/a.mp4", False),
        ("file:///etc/passwd", False),
        ("https://127.0.0.1:8080/a.mp4", False),
    ],
)
def test_host_allowlist(url, ok):
    assert (host_allowed(url, ["videos.pexels.com"], allow_http=False) is None) is ok


def test_host_allowlist_port_pinning():
    hosts = ["127.0.0.1:8080"]
    assert host_allowed("http://127.0.0.1:8080/a.mp4", hosts, allow_http=True) is None
    assert host_allowed("http://127.0.0.1:9090/a.mp4", hosts, allow_http=True) is not None
    assert host_allowed("http://localhost:8080/a.mp4", hosts, allow_http=True) is not None


def test_filters_and_endpoints(tmp_path):
    cfg = full_config({"source": {"kind": "pexels"}})["source"]["pexels"]
    good = {"width": 1920, "height": 1080, "duration": 10}
    assert rejection(good, cfg) is None
    assert "too small" in rejection({**good, "width": 426, "height": 240}, cfg)
    assert "duration" in rejection({**good, "duration": 200}, cfg)
    assert "portrait" in rejection(
        {**good, "width": 1080, "height": 1920}, {**cfg, "orientation": "landscape"}
    )
    queries = tmp_path / "q.txt"
    queries.write_text("beach  # sand\n\n# only a comment\nNature\nforest\n")
    cfg = {**cfg, "queries": ["nature", "city"], "queries_file": str(queries)}
    assert load_queries(cfg) == ["nature", "city", "beach", "forest"]
    eps = endpoints(cfg)
    assert [e.label for e in eps] == [
        "popular",
        "search:nature",
        "search:city",
        "search:beach",
        "search:forest",
    ]
    assert all(e.params["per_page"] == 80 for e in eps)
    assert len({e.key for e in eps}) == len(eps)
    with pytest.raises(FileNotFoundError, match="queries_file"):
        load_queries({**cfg, "queries_file": str(tmp_path / "none.txt")})


def test_parse_page_skips_what_it_cannot_use():
    assert parse_page(b'{"videos": [').error.startswith("malformed JSON")
    assert parse_page(b'{"page": 1}').error == "missing field: videos"
    video = {
        "id": 5,
        "width": 1920,
        "height": 1080,
        "duration": 7,
        "url": "https://x/5",
        "user": {"name": "A", "url": "https://x/a"},
        "video_files": [],
    }
    page = parse_page(
        json.dumps(
            {
                "videos": [video, {"id": 6, "width": 1}, "junk"],
                "total_results": 3,
                "next_page": "https://x?page=2",
            }
        ).encode()
    )
    assert [v["id"] for v in page.videos] == [5] and page.has_next and page.total_results == 3
    assert len(page.skipped) == 2 and "missing" in page.skipped[0]["reason"]


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self):
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeResponse:
    def __init__(self, status=200, headers=None, body=b'{"videos": []}'):
        self.status_code, self.headers, self.content = status, headers or {}, body


class FakeSession:
    def __init__(self, responses):
        self.responses = list(responses)
        self.calls = []

    def get(self, url, **kw):
        self.calls.append((url, kw))
        return self.responses.pop(0)


def _client(responses, **cfg):
    base = full_config({"source": {"kind": "pexels"}})["source"]["pexels"]
    t = FakeTime()
    session = FakeSession(responses)
    client = PexelsClient(
        {**base, **cfg},
        KEY,
        session=session,
        clock=t.clock,
        wall=lambda: t.now,
        sleep=t.sleep,
        seed=0,
    )
    return client, session, t


def test_requests_are_paced_to_the_hourly_budget():
    client, session, t = _client([FakeResponse() for _ in range(4)])
    for _ in range(4):
        client.get("/videos/popular", {}, "popular")
    assert t.sleeps == [18.0, 18.0, 18.0]  # 3600 s / 200 requests
    assert all(kw["headers"] == {"Authorization": KEY} for _, kw in session.calls)


def test_spent_quota_waits_for_reset_or_stops():
    client, _, t = _client(
        [
            FakeResponse(headers={"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "1100"}),
            FakeResponse(),
        ],
        requests_per_hour=1e9,
    )
    client.get("/videos/popular", {}, "p1")
    client.get("/videos/popular", {}, "p2")
    assert t.now >= 1100  # waited for the reset before the second request
    client, _, t = _client(
        [
            FakeResponse(
                status=429, headers={"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(10**9)}
            )
        ],
        requests_per_hour=1e9,
    )
    with pytest.raises(QuotaExhausted, match="rerun it later"):
        client.get("/videos/popular", {}, "p1")


def test_server_errors_retry_with_backoff_then_give_up():
    client, session, t = _client(
        [FakeResponse(500)] * 3 + [FakeResponse()],
        requests_per_hour=1e9,
        retries=3,
        backoff_s=1,
        backoff_max_s=8,
    )
    assert client.get("/videos/popular", {}, "p")[0] == 200
    assert len(session.calls) == 4 and client.stats.retries == 3
    # Full jitter under base * 2**attempt, one backoff per retry (pacing sleeps are ~1e-6 s).
    backoffs = [s for s in t.sleeps if s > 1e-3]
    assert len(backoffs) == 3 and all(s <= 2**a for a, s in enumerate(backoffs)), t.sleeps
    client, session, _ = _client([FakeResponse(503)] * 3, requests_per_hour=1e9, retries=2)
    with pytest.raises(OSError, match="gave up after 3 tries"):
        client.get("/videos/popular", {}, "p")
    client, _, _ = _client([FakeResponse(401)], requests_per_hour=1e9)
    with pytest.raises(AuthError) as err:
        client.get("/videos/popular", {}, "p")
    assert KEY not in str(err.value) and "PEXELS_API_KEY" in str(err.value)


def test_redact_filter_scrubs_the_key():
    record = logging.LogRecord("x", logging.INFO, "f", 1, "header was %s", (KEY,), None)
    RedactFilter(KEY).filter(record)
    assert KEY not in record.getMessage()


def test_a_restarted_crawl_keeps_the_pace():
    client, _, t = _client([FakeResponse()])
    client.not_before(t.now + 12.0)  # the last stored page was fetched 6 s ago (18 s interval)
    client.get("/videos/popular", {}, "popular")
    assert t.sleeps == [12.0]


class StubClient:
    """Answers every page with one fresh video; endpoints in ``failing`` keep failing."""

    interval = 0.0

    def __init__(self, failing=()):
        self.failing = set(failing)
        self.asked: list[tuple] = []
        self.stats = Stats()

    def not_before(self, epoch):
        pass

    def get(self, path, params, what):
        self.asked.append((params.get("query"), params["page"]))
        self.stats.requests += 1
        if params.get("query") in self.failing:
            raise RetriesExhausted(f"{what}: gave up after 6 tries (HTTP 503)")
        vid = 1000 * len(params.get("query") or "p") + params["page"]
        video = {
            "id": vid,
            "width": 1920,
            "height": 1080,
            "duration": 10,
            "url": f"https://x/{vid}",
            "user": {"name": "A", "url": "https://x/a"},
            "video_files": [_file(vid * 10, 640, 360)],
        }
        body = {"videos": [video], "total_results": 2}
        if params["page"] < 2:
            body["next_page"] = "https://x/next"
        return 200, json.dumps(body).encode()


def test_a_failing_endpoint_leaves_the_crawl_incomplete_and_resumable(tmp_path):
    cfg = full_config({"source": {"kind": "pexels"}})["source"]["pexels"]
    cfg = {**cfg, "popular": False, "queries": ["ok", "down"], "max_videos": 10}
    store = PageStore(tmp_path / "pages")
    client = StubClient(failing={"down"})
    with pytest.raises(OSError, match=r"crawl incomplete: search:down .* rerun to resume"):
        Crawler(cfg, client, store).run()
    assert client.asked == [("ok", 1), ("down", 1), ("ok", 2)]
    client = StubClient()
    result = Crawler(cfg, client, store).run()
    assert client.asked == [("down", 1), ("down", 2)]  # only what the first run lacked
    assert len(result.videos) == 4 and result.pages_replayed == 2
