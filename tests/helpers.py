"""Small test utilities shared by several test modules."""

from __future__ import annotations

import functools
import http.server
import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from covermill.tasks.cover.download import DownloadSettings


def stop(*processes: subprocess.Popen, timeout: float = 30) -> None:
    """Ask long-running child processes (servers, workers) to stop; kill what does not in time."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The tests' servers listen on 127.0.0.1, which a download refuses unless download.allow_private
# names it: what a test's config.yaml (`{"download": ALLOW_LOOPBACK}`) or settings add.
ALLOW_LOOPBACK = {"allow_private": ["127.0.0.1"]}


def loopback_downloads(**settings: object) -> DownloadSettings:
    """DownloadSettings that may fetch from the tests' servers on 127.0.0.1 (and nowhere else private)."""
    from covermill.tasks.cover.download import DownloadSettings

    return DownloadSettings(**ALLOW_LOOPBACK, **settings)


@contextmanager
def http_server(folder: Path, handler_class: type[http.server.SimpleHTTPRequestHandler] = http.server.SimpleHTTPRequestHandler) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `folder` (with `handler_class`, a SimpleHTTPRequestHandler
    that may answer some paths its own way); yields its base URL."""
    handler = functools.partial(handler_class, directory=str(folder))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)  # a quick shutdown()
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# What Prefect's own client (prefect.client.base.PrefectHttpxSyncClient.send) retries: these statuses
# (plus PREFECT_CLIENT_RETRY_EXTRA_CODES) and these transport errors. Prefect retries ConnectError
# only once it has reached the server; the tests only talk to a server that answered its health check.
RETRY_STATUSES = frozenset({408, 429, 502, 503})
RETRY_ERRORS = (httpx.ReadTimeout, httpx.PoolTimeout, httpx.ConnectTimeout, httpx.ConnectError, httpx.ReadError,
                httpx.WriteError, httpx.RemoteProtocolError, httpx.LocalProtocolError)


def _retry_after(value: str) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP date); None when unreadable."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        seconds = (at - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class RetryingTransport(httpx.BaseTransport):
    """An httpx transport that retries a request the way Prefect's client does: on 408/429/502/503
    (and PREFECT_CLIENT_RETRY_EXTRA_CODES) or a broken connection, up to PREFECT_CLIENT_MAX_RETRIES
    more times (5 by default), waiting what Retry-After asks (at least that, up to (1 + jitter) times
    it) or else 2, 4, 8, ... seconds with PREFECT_CLIENT_RETRY_JITTER_FACTOR's jitter (0.2: within
    +-20%). When the tries run out, the last answer comes back as it is (a 503 stays visible) and the
    last connection error is raised."""

    def __init__(self, inner: httpx.BaseTransport | None = None, retries: int | None = None,
                 jitter: float | None = None, sleep: Callable[[float], None] = time.sleep):
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, PREFECT_CLIENT_RETRY_EXTRA_CODES, PREFECT_CLIENT_RETRY_JITTER_FACTOR

        self.inner = inner or httpx.HTTPTransport()
        self.retries = PREFECT_CLIENT_MAX_RETRIES.value() if retries is None else retries
        self.jitter = PREFECT_CLIENT_RETRY_JITTER_FACTOR.value() if jitter is None else jitter
        self.statuses = RETRY_STATUSES | set(PREFECT_CLIENT_RETRY_EXTRA_CODES.value())
        self.sleep = sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next try after failed try number `attempt` (1, 2, ...)."""
        from prefect.utilities.math import bounded_poisson_interval, clamped_poisson_interval

        seconds = 2.0 ** attempt if retry_after is None else retry_after
        if seconds <= 0 or self.jitter <= 0:
            return seconds
        if retry_after is not None:  # never sooner than the server asked
            return bounded_poisson_interval(seconds, seconds * (1 + self.jitter))
        return clamped_poisson_interval(seconds, self.jitter)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.inner.handle_request(request)
            except RETRY_ERRORS:
                if attempt > self.retries:
                    raise
                retry_after = None
            else:
                if response.status_code not in self.statuses or attempt > self.retries:
                    return response
                header = response.headers.get("Retry-After")
                retry_after = _retry_after(header) if header is not None else None
                response.close()
            self.sleep(self.delay(attempt, retry_after))

    def close(self) -> None:
        self.inner.close()


def prefect_http(api: str, timeout: float = 30, **transport_options) -> httpx.Client:
    """An HTTP client on the Prefect API at `api` (".../api"; paths like "/deployments/...") that
    retries like Prefect's own client: what the tests use to talk HTTP to a Prefect server."""
    return httpx.Client(base_url=api, timeout=timeout, transport=RetryingTransport(**transport_options))


def publishable_song(out: Path, name: str, video: Path, thumbnail: Path, combined: float) -> str:
    """A song whose stages ran up to its video, as the cover_song flow leaves it: ledger rows,
    metadata.json and the files the upload stage reads (copies of a real video and thumbnail)."""
    import shutil

    from covermill.tasks.core.atomic import write_json
    from covermill.tasks.core.layout import SongFolder, ledger_path, song_id_for
    from covermill.tasks.core.ledger import Ledger, State
    from covermill.tasks.core.records import Candidate, Publication, Ranking, Score, Song
    from covermill.tasks.media.metadata import render_metadata

    song_id = song_id_for(f"test:{name}")
    folder = SongFolder(out, song_id)
    folder.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(video, folder.video)
    shutil.copyfile(thumbnail, folder.thumbnail)
    song = Song(id=song_id, source=f"https://example.com/{name}.ogg", source_id=f"test:{name}", title=name,
                artist="Planet Blupi", duration=25.0, original=folder.original(".ogg"), audio=folder.audio)
    winner = Candidate(id="basic-pitch-chords", generator="basic-pitch", style="chords", midi=folder.winner_midi)
    score = Score(candidate_id=winner.id, qmax=combined, aligned_share=0.5, frames=100, defects={}, combined=combined)
    title, description = render_metadata(song, winner, score)
    publication = Publication(title=title, description=description, thumbnail=folder.thumbnail, video=folder.video)
    write_json(folder.metadata, {"song": song.model_dump(mode="json"), "winner": winner.model_dump(mode="json"),
                                 "score": score.model_dump(mode="json"), "publication": publication.model_dump(mode="json")})
    ledger = Ledger(ledger_path(out))
    ledger.record_song(song)
    ledger.record_ranking(song_id, Ranking(scores=[score], pick=winner.id))
    for stage in ("download", "generate", "render", "rank", "winner", "thumbnail", "video"):
        ledger.mark(song_id, stage, State.DONE)
    return song_id
