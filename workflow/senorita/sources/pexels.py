"""The Pexels source: crawl the API's metadata into the catalogue; download files per shard.

Crawl. The endpoints are the popular list (if enabled) and one search per configured query; they
are crawled round-robin, a page of each in turn, so a capped crawl still spans every query. Each
page is stored, as soon as it arrives, in its own file under ``results/sources/pexels/pages/``
(written atomically), so the stored pages *are* the crawl's state: a killed crawl replays them and
asks only for the pages it has not got, and a finished crawl replays them all without a single
request. The folder of an endpoint is named by a hash of its server-side parameters, so changing
a query or a server-side filter starts that endpoint afresh, while client-side filters (duration,
size, rendition) are re-applied to the stored pages at no cost.

Videos are de-duplicated by Pexels id across endpoints (the first endpoint that found one keeps
it), filtered, and the crawl stops once ``max_videos`` are kept.

Download. ``prefetch`` (called by ingest once per shard) downloads the shard's files concurrently;
``materialise`` downloads one. Files are named ``<pexels id>-<file id>.mp4`` from ids only. A file
that arrives corrupt or short every time is tried once more in the video's next rendition before
the video is rejected. A download that failed transiently (connection, timeout, 5xx) is no reject:
the video is left *pending* and tried again by the next run. More than
``download.max_failed_fraction`` of a shard pending fails the shard's job (so Snakemake's retries
and ``--rerun-incomplete`` take over); fewer, and the job succeeds and records them in
``results/sources/pending/<shard>.json``, whose ``generation`` the ingest rule reads as a
parameter: it grows each time a job leaves downloads pending, so the next ``snakemake`` run
reruns that shard's ingest (reason: params changed) and fetches them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_text
from senorita.ids import shard_name, stable_hash
from senorita.progress import Progress
from senorita.sources import CATALOGUE_COLUMNS, Pending
from senorita.sources.download import (
    BAD_FILE,
    TRANSIENT,
    Downloaded,
    Downloader,
    Failure,
    clean_partials,
)
from senorita.sources.pexels_api import (
    KEY_ENV,
    KEY_FILE_ENV,
    PexelsClient,
    PexelsError,
    RetriesExhausted,
    api_key,
    install_redaction,
    parse_page,
)

log = logging.getLogger(__name__)

# Extra catalogue columns; pexels_id and rendition also travel into every pair row.
PEXELS_COLUMNS = [
    "source_name",
    "pexels_id",
    "pexels_width",
    "pexels_height",
    "pexels_duration",
    "found_by",
    "rendition",
    "rendition_file_id",
    "rendition_width",
    "rendition_height",
    "rendition_url",
    # The next rendition (JSON of the five rendition_* fields above, or null), tried once when
    # the chosen file arrives corrupt or short.
    "rendition_alt",
]
# An endpoint whose pages keep failing to parse is given up after this many in a row.
MAX_BAD_PAGES = 3


@dataclass(frozen=True)
class Endpoint:
    path: str  # /videos/search or /videos/popular
    params: dict[str, Any]  # server-side parameters, without page
    label: str  # for logs and the catalogue's found_by column

    @property
    def key(self) -> str:
        return stable_hash(self.path, json.dumps(self.params, sort_keys=True))


def load_queries(cfg: dict[str, Any]) -> list[str]:
    """The configured queries plus those in ``queries_file`` (one a line, # comments), deduped."""
    queries = list(cfg["queries"])
    if cfg.get("queries_file"):
        path = Path(cfg["queries_file"]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"config source.pexels.queries_file: no file at {path}")
        for line in path.read_text(encoding="utf-8").splitlines():
            if query := line.split("#", 1)[0].strip():
                queries.append(query)
    seen: set[str] = set()
    return [q for q in queries if not (q.lower() in seen or seen.add(q.lower()))]


def endpoints(cfg: dict[str, Any]) -> list[Endpoint]:
    per_page = cfg["per_page"]
    out = []
    if cfg["popular"]:
        params = {
            "per_page": per_page,
            "min_width": cfg["min_width"],
            "min_height": cfg["min_height"],
            "min_duration": int(cfg["min_duration_s"]),
            "max_duration": int(cfg["max_duration_s"] + 0.999),
        }
        out.append(Endpoint("/videos/popular", params, "popular"))
    for query in load_queries(cfg):
        params = {"query": query, "per_page": per_page}
        for name in ("orientation", "size"):
            if cfg.get(name):
                params[name] = cfg[name]
        out.append(Endpoint("/videos/search", params, f"search:{query}"))
    if not out:
        raise ValueError("config source.pexels: no queries and popular is off: nothing to crawl")
    return out


def rejection(video: dict[str, Any], cfg: dict[str, Any]) -> str | None:
    """Why a video fails the configured filters, or None."""
    w, h, d = video["width"], video["height"], video["duration"]
    if w < cfg["min_width"] or h < cfg["min_height"]:
        return f"too small ({w}x{h})"
    if not cfg["min_duration_s"] <= d <= cfg["max_duration_s"]:
        return f"duration {d} s out of range"
    orientation = cfg.get("orientation")
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    if orientation and shape != orientation:
        return f"{shape}, not {orientation}"
    return None


def choose_rendition(
    files: list[dict[str, Any]], width: int, height: int, file_types: list[str]
) -> dict[str, Any] | None:
    """The smallest file that covers ``width`` x ``height`` (in either orientation), preferring
    file types in the order given; the largest one if none covers it. Never a stream playlist."""
    ranked = rank_renditions(files, width, height, file_types)
    return ranked[0] if ranked else None


def rank_renditions(
    files: list[dict[str, Any]], width: int, height: int, file_types: list[str]
) -> list[dict[str, Any]]:
    """The usable files, best first (the order ``choose_rendition`` picks by)."""
    want_long, want_short = max(width, height), min(width, height)

    def usable(f: dict[str, Any]) -> bool:
        return (
            f.get("file_type") in file_types
            and bool(f.get("width"))
            and bool(f.get("height"))
            and f.get("id") is not None
            and bool(f.get("link"))
            and f.get("quality") != "hls"
            and not str(f["link"]).split("?")[0].endswith(".m3u8")
        )

    def rank(f: dict[str, Any]) -> tuple:
        area = f["width"] * f["height"]
        long, short = max(f["width"], f["height"]), min(f["width"], f["height"])
        covers = long >= want_long and short >= want_short
        return (file_types.index(f["file_type"]), not covers, area if covers else -area, f["id"])

    return sorted((f for f in files if usable(f)), key=rank)


class PageStore:
    """One JSON file per fetched page: the crawl's progress, written atomically."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, ep: Endpoint, page: int) -> Path:
        return self.folder / ep.key / f"{page:05d}.json"

    def load(self, ep: Endpoint, page: int) -> dict[str, Any] | None:
        path = self.path(ep, page)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # cannot happen with atomic writes; refetch if it does
            log.warning("stored page %s is unreadable; fetching it again", path)
            return None

    def last_fetch(self) -> float | None:
        """When the newest stored page was written (epoch seconds), if any."""
        times = [p.stat().st_mtime for p in self.folder.glob("*/0*.json")]
        return max(times) if times else None

    def save(self, ep: Endpoint, page: int, record: dict[str, Any]) -> None:
        if not (self.folder / ep.key / "endpoint.json").exists():
            write_text(
                json.dumps({"path": ep.path, "params": ep.params}, sort_keys=True),
                self.folder / ep.key / "endpoint.json",
            )
        write_text(json.dumps(record, sort_keys=True), self.path(ep, page))


@dataclass
class CrawlResult:
    videos: list[dict[str, Any]]  # kept, in discovery order, each with "found_by"
    requests: int  # HTTP requests made by this run (retries included)
    pages_fetched: int  # pages fetched by this run
    pages_replayed: int  # pages read from the store
    duplicates: int
    filtered: int
    skipped_pages: int


class Crawler:
    def __init__(self, cfg: dict[str, Any], client: PexelsClient | None, store: PageStore):
        self.cfg, self.client, self.store = cfg, client, store

    def _fetch(self, ep: Endpoint, page: int) -> dict[str, Any]:
        if self.client is None:
            raise PexelsError(f"{KEY_ENV} is not set and {ep.label} page {page} is not stored")
        what = f"{ep.label} page {page}"
        status, body = self.client.get(ep.path, {**ep.params, "page": page}, what)
        record: dict[str, Any] = {
            "endpoint": ep.label,
            "page": page,
            "fetched_at": datetime.now(UTC).isoformat(),
        }
        if status != 200:
            # A 4xx other than auth/rate limit: nothing more this endpoint can give.
            log.warning("%s: HTTP %d; endpoint finished", what, status)
            return {
                **record,
                "videos": [],
                "skipped": [],
                "total_results": None,
                "has_next": False,
                "error": f"HTTP {status}",
            }
        parsed = parse_page(body)
        if parsed.error:
            log.warning("%s skipped: %s", what, parsed.error)
        if parsed.skipped:
            ids = ", ".join(f"{b['id']} ({b['reason']})" for b in parsed.skipped[:5])
            log.warning(
                "%s: %d videos skipped for missing or bad fields: %s%s",
                what,
                len(parsed.skipped),
                ids,
                ", ..." if len(parsed.skipped) > 5 else "",
            )
        return {
            **record,
            "videos": parsed.videos,
            "skipped": parsed.skipped,
            "total_results": parsed.total_results,
            "has_next": parsed.has_next,
            "error": parsed.error,
        }

    def _progress_label(self, kept: int, limit: int) -> str:
        text = f"crawl ({kept} of {limit} videos kept"
        quota = getattr(self.client, "quota", None)
        stats = getattr(self.client, "stats", None)
        if quota is not None and quota.remaining is not None:
            text += f", quota left {quota.remaining}"
        if stats is not None:
            text += f", waited {stats.waited_s:.0f} s for the quota"
        return text + ")"

    def run(self) -> CrawlResult:
        cfg = self.cfg
        eps = endpoints(cfg)
        if self.client is not None and (last := self.store.last_fetch()) is not None:
            self.client.not_before(last + self.client.interval)
        state = {ep.key: {"page": 1, "done": False, "bad": 0, "total": None} for ep in eps}
        kept: dict[int, dict[str, Any]] = {}
        fetched = replayed = duplicates = filtered = skipped_pages = 0
        stalled: list[str] = []
        limit = cfg["max_videos"]
        # Pages done (replayed ones count as done, not towards the rate); the label carries the
        # videos kept and the quota, so a long crawl's log shows where it is and why it waits.
        progress = Progress("crawl", total=None, unit="pages")
        while len(kept) < limit and not all(s["done"] for s in state.values()):
            for ep in eps:
                st = state[ep.key]
                if st["done"] or len(kept) >= limit:
                    continue
                page = st["page"]
                record = self.store.load(ep, page)
                if record is None:
                    try:
                        record = self._fetch(ep, page)
                    except RetriesExhausted as err:
                        log.error("%s; leaving %s for a later run", err, ep.label)
                        stalled.append(ep.label)
                        st["done"] = True
                        continue
                    self.store.save(ep, page, record)
                    fetched += 1
                    progress.label = self._progress_label(len(kept), limit)
                    progress.step()
                else:
                    replayed += 1
                    progress.skip()
                if record.get("error"):
                    skipped_pages += 1
                    st["bad"] += 1
                else:
                    st["bad"] = 0
                    st["total"] = record.get("total_results") or st["total"]
                for video in record["videos"]:
                    if len(kept) >= limit:
                        break
                    if video["id"] in kept:
                        duplicates += 1
                    elif rejection(video, cfg) or not choose_rendition(
                        video["video_files"],
                        cfg["rendition_width"],
                        cfg["rendition_height"],
                        cfg["file_types"],
                    ):
                        filtered += 1
                    else:
                        kept[video["id"]] = {**video, "found_by": ep.label}
                st["page"] = page + 1
                past_end = st["total"] is not None and page * cfg["per_page"] >= st["total"]
                capped = cfg["max_pages_per_query"] and page >= cfg["max_pages_per_query"]
                given_up = record.get("error") and (past_end or st["bad"] >= MAX_BAD_PAGES)
                if not record["has_next"] or given_up or capped:
                    st["done"] = True
        requests_made = self.client.stats.requests if self.client else 0
        progress.label = self._progress_label(len(kept), limit)
        progress.done()
        log.info(
            "crawl: %d videos kept (%d duplicates, %d filtered out); %d pages fetched, "
            "%d replayed from %s, %d skipped as unusable; %d API requests",
            len(kept),
            duplicates,
            filtered,
            fetched,
            replayed,
            self.store.folder,
            skipped_pages,
            requests_made,
        )
        if stalled and len(kept) < limit:
            raise PexelsError(
                f"crawl incomplete: {', '.join(stalled)} kept failing; the {fetched + replayed} "
                "pages so far are stored, rerun to resume"
            )
        return CrawlResult(
            list(kept.values()),
            requests_made,
            fetched,
            replayed,
            duplicates,
            filtered,
            skipped_pages,
        )


class PexelsSource:
    kind = "pexels"

    def __init__(self, cfg: dict[str, Any], workdir: Path, key: str | None = None):
        self.cfg = cfg
        self.folder = (workdir / "pexels").resolve()
        # Per-shard records of downloads left for the next run (see the module doc).
        self.pending_folder = (workdir / "pending").resolve()
        # Read only by the crawl: download jobs (on a cluster) have no key and need none.
        self._key = key
        self._downloader: Downloader | None = None

    @property
    def key(self) -> str | None:
        if self._key is None:
            self._key = api_key()
            if self._key:
                install_redaction(self._key)
        return self._key

    @property
    def downloader(self) -> Downloader:
        if self._downloader is None:
            cfg = self.cfg
            self._downloader = Downloader(
                cfg["download"],
                (cfg["connect_timeout_s"], cfg["read_timeout_s"]),
                (cfg["backoff_s"], cfg["backoff_max_s"]),
            )
        return self._downloader

    def crawl(self, client: PexelsClient | None = None) -> CrawlResult:
        if client is None and self.key:
            client = PexelsClient(self.cfg, self.key)
        return Crawler(self.cfg, client, PageStore(self.folder / "pages")).run()

    def catalogue(self) -> pd.DataFrame:
        if not self.key:
            raise PexelsError(
                f"source.kind is 'pexels' but neither {KEY_ENV} nor {KEY_FILE_ENV} is set in "
                "the environment"
            )
        result = self.crawl()
        rows = []
        for video in result.videos:
            ranked = rank_renditions(
                video["video_files"],
                self.cfg["rendition_width"],
                self.cfg["rendition_height"],
                self.cfg["file_types"],
            )
            assert ranked  # the crawl kept only videos with one
            pick, alt = ranked[0], (ranked[1] if len(ranked) > 1 else None)
            rows.append(
                {
                    "video_id": f"pexels-{video['id']}",
                    "path": None,  # known once downloaded, in its shard's folder
                    "origin": "pexels",
                    "licence": self.cfg["licence"],
                    "author": video["author"],
                    "author_url": video["author_url"],
                    "page_url": video["url"],
                    "source_name": f"pexels-{video['id']}",
                    "pexels_id": int(video["id"]),
                    "pexels_width": video["width"],
                    "pexels_height": video["height"],
                    "pexels_duration": video["duration"],
                    "found_by": video["found_by"],
                    **_rendition_fields(pick),
                    "rendition_alt": json.dumps(_rendition_fields(alt)) if alt else None,
                }
            )
        return pd.DataFrame(rows, columns=[*CATALOGUE_COLUMNS, *PEXELS_COLUMNS])

    def local_path(self, row: dict[str, Any], file_id: int | None = None) -> Path:
        """Where a row's file lives: built from integers only, never from API strings."""
        shard = int(row.get("shard") or 0)
        fid = int(row["rendition_file_id"] if file_id is None else file_id)
        return self.folder / "videos" / shard_name(shard) / f"{int(row['pexels_id'])}-{fid}.mp4"

    def materialise(self, row: dict[str, Any]) -> Path:
        return self.downloader.fetch(row["rendition_url"], self.local_path(row)).path

    def prefetch(self, rows: list[dict[str, Any]]) -> dict[str, Path | str]:
        """Download a shard's files concurrently: video_id -> local path, a reject reason (str),
        or a ``Pending`` reason for a transient failure (the next run tries again).

        A row whose file came in its next rendition is updated in place (its rendition_*
        fields), so the accepted table names the file it holds.
        """
        if not rows:
            return {}
        for folder in {self.local_path(r).parent for r in rows}:
            if clean_partials(folder):
                log.info("removed partial downloads of a killed run in %s", folder)
        shard = int(rows[0].get("shard") or 0)
        by_id = {r["video_id"]: r for r in rows}
        results: dict[str, Downloaded | Failure] = {}
        jobs = {}
        for vid, row in by_id.items():
            alt = _alt(row)
            alt_path = self.local_path(row, alt["rendition_file_id"]) if alt else None
            if alt_path is not None and alt_path.is_file():  # an earlier run fell back
                _use_alt(row)
                results[vid] = Downloaded(alt_path, alt_path.stat().st_size, "", fresh=False)
            else:
                jobs[vid] = (row["rendition_url"], self.local_path(row))
        results.update(self.downloader.fetch_many(jobs, f"downloads shard {shard_name(shard)}"))

        # Corrupt or short every time: the next rendition, once.
        retry = {
            vid: row
            for vid, row in by_id.items()
            if isinstance(results[vid], Failure) and results[vid].kind == BAD_FILE and _alt(row)
        }
        if retry:
            log.info("%d files arrived corrupt or short: trying their next rendition", len(retry))
            alt_jobs = {
                vid: (
                    _alt(row)["rendition_url"],
                    self.local_path(row, _alt(row)["rendition_file_id"]),
                )
                for vid, row in retry.items()
            }
            for vid, got in self.downloader.fetch_many(
                alt_jobs, f"downloads shard {shard_name(shard)}, next renditions"
            ).items():
                if isinstance(got, Downloaded):
                    _use_alt(by_id[vid])
                    results[vid] = got
                else:
                    results[vid] = Failure(f"{results[vid]}; next rendition: {got}", got.kind)

        pending = {
            vid: got
            for vid, got in results.items()
            if isinstance(got, Failure) and got.kind == TRANSIENT
        }
        fresh = sum(isinstance(v, Downloaded) and v.fresh for v in results.values())
        kept = sum(isinstance(v, Downloaded) and not v.fresh for v in results.values())
        failed = sum(isinstance(v, Failure) for v in results.values()) - len(pending)
        log.info(
            "downloads of shard %05d: %d new, %d already finished, %d failed for good, "
            "%d failed for now (left for the next run)",
            shard,
            fresh,
            kept,
            failed,
            len(pending),
        )
        limit = self.cfg["download"]["max_failed_fraction"]
        if len(pending) > limit * len(rows):
            first = "; ".join(f"{vid}: {why}" for vid, why in list(pending.items())[:3])
            raise DownloadsIncomplete(
                f"shard {shard_name(shard)}: {len(pending)} of {len(rows)} downloads failed "
                f"transiently (more than source.pexels.download.max_failed_fraction = {limit}); "
                f"the {fresh + kept} finished files are kept and a rerun fetches the rest. "
                f"First errors: {first}"
            )
        self._record_pending(shard, pending)
        return {
            vid: got.path
            if isinstance(got, Downloaded)
            else Pending(got)
            if got.kind == TRANSIENT
            else str(got)
            for vid, got in results.items()
        }

    def pending_path(self, shard: int) -> Path:
        return self.pending_folder / f"{shard_name(shard)}.json"

    def _record_pending(self, shard: int, pending: dict[str, Failure]) -> None:
        """Note the shard's downloads left for the next run; bump ``generation`` if any.

        The ingest rule reads ``generation`` as a parameter, so a bump makes Snakemake rerun
        this shard's ingest next time. Only a job that succeeds bumps it: Snakemake records the
        parameter as it was before the job ran, and a failed job is rerun anyway.
        """
        path = self.pending_path(shard)
        previous = pending_generation(path)
        if not pending and not path.exists():
            return
        record = {
            "generation": previous + 1 if pending else previous,
            "pending": dict(sorted(pending.items())),
            "written_at": datetime.now(UTC).isoformat(),
        }
        write_text(json.dumps(record, indent=1, sort_keys=True), path)
        if pending:
            log.warning(
                "shard %05d: %d downloads failed for now, listed in %s; rerun the workflow to "
                "fetch them (their ingest job reruns: its 'retry' parameter changed)",
                shard,
                len(pending),
                path,
            )


class DownloadsIncomplete(PexelsError):
    """Too many of a shard's downloads failed transiently: the job fails, to be rerun."""


def pending_generation(path: Path) -> int:
    """The ``generation`` of a shard's pending-downloads record; 0 if there is none."""
    try:
        return int(json.loads(Path(path).read_text(encoding="utf-8"))["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _rendition_fields(f: dict[str, Any]) -> dict[str, Any]:
    return {
        "rendition": f"{f['quality']} {f['width']}x{f['height']} {f['file_type']} (file {f['id']})",
        "rendition_file_id": int(f["id"]),
        "rendition_width": f["width"],
        "rendition_height": f["height"],
        "rendition_url": f["link"],
    }


def _alt(row: dict[str, Any]) -> dict[str, Any] | None:
    raw = row.get("rendition_alt")
    return json.loads(raw) if isinstance(raw, str) and raw else None


def _use_alt(row: dict[str, Any]) -> None:
    """Make a row describe its next rendition (the file it now holds)."""
    alt = _alt(row)
    assert alt is not None
    row.update(alt, rendition_alt=None)
