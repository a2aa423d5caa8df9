"""Send one file through a resumable upload session: chunk by chunk, retried, resumed, never restarted.

google-api-python-client does the protocol (open a session, PUT chunks, read the 308's Range).
What it leaves to its caller is done here: retrying 5xx answers and broken connections with
exponential backoff and full jitter, reporting the session URI the moment it exists (the ledger
keeps it), and picking up a session a dead process left behind by asking the server how many
bytes it holds, so only the rest is sent.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import httplib2
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload

from covermill.tasks.core.errors import SessionGone, UploadGaveUp
from covermill.tasks.core.urls import without_queries

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
# What a connection that breaks mid-chunk raises through httplib2 (ConnectionError covers resets
# and broken pipes; RemoteDisconnected is an HTTPException).
TRANSIENT_ERRORS = (ConnectionError, socket.timeout, http.client.HTTPException, httplib2.ServerNotFoundError)


class ChunkedFileUpload(MediaFileUpload):
    """A MediaFileUpload whose chunks are read into bytes rather than streamed.

    Streamed chunks cannot be sent twice: when a 401 makes the authorized transport refresh the
    token and repeat the PUT, a stream slice is already consumed and the repeat carries no body.
    One chunk in memory (a few MiB) is the price of a repeat that carries the same bytes.
    """

    before_read: Callable[[], None] | None = None  # called as a chunk is read: the session is open by then

    def has_stream(self) -> bool:
        return False

    def getbytes(self, begin: int, length: int) -> bytes:
        if self.before_read is not None:
            self.before_read()
        return super().getbytes(begin, length)


def backoff_delay(attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^(attempt-1))]."""
    return rand() * min(cap_s, base_s * 2 ** (attempt - 1))


def is_retryable(error: Exception) -> bool:
    if isinstance(error, HttpError):
        return error.status_code in RETRY_STATUS
    return isinstance(error, TRANSIENT_ERRORS)


def session_status(http: Any, session_uri: str, size: int) -> tuple[int, dict[str, Any] | None]:
    """(bytes the server holds, the finished resource or None) for an upload session.

    An empty PUT with `Content-Range: bytes */size` is the protocol's status query: 308 with the
    Range held so far, or 200/201 with the resource when the last chunk already arrived.
    """
    response, content = http.request(session_uri, "PUT", headers={"Content-Range": f"bytes */{size}", "Content-Length": "0"})
    if response.status in (200, 201):
        return size, json.loads(content or b"{}")
    if response.status == 308:
        held = response.get("range")
        return (int(held.rsplit("-", 1)[1]) + 1 if held else 0), None
    if response.status in (404, 410):
        raise SessionGone(f"upload session answered {response.status}")
    raise HttpError(response, content, uri=session_uri)


def send(request: Any, *, size: int, session_uri: str | None = None, on_session: Callable[[str], None] = lambda _: None,
         on_progress: Callable[[int, int], None] = lambda _sent, _total: None, retries: int = 8,
         backoff_s: float = 1.0, backoff_max_s: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run a resumable `request` (built with a ChunkedFileUpload) to the end; return the response.

    With `session_uri`, continue that session from the bytes the server holds (SessionGone when it
    no longer exists). `retries` counts failures in a row: any acknowledged progress resets it.
    """
    if session_uri is not None:
        held, finished = session_status(request.http, session_uri, size)
        if finished is not None:
            return finished
        request.resumable_uri, request.resumable_progress = session_uri, held
    known = session_uri

    def opened() -> None:
        """Tell a new session's address as soon as it exists, before its first byte is sent: a
        process killed during the first chunk (most covers are one chunk) can then resume it."""
        nonlocal known
        if request.resumable_uri and request.resumable_uri != known:
            known = request.resumable_uri
            on_session(known)

    if isinstance(getattr(request, "resumable", None), ChunkedFileUpload):
        request.resumable.before_read = opened
    failures = 0
    while True:
        try:
            status, response = request.next_chunk(num_retries=0)
        except Exception as error:  # noqa: BLE001 - sorted into retryable or not right below
            if not is_retryable(error):
                raise
            opened()
            failures += 1
            if failures > retries:
                raise UploadGaveUp(f"gave up after {retries} retries in a row ({without_queries(str(error))})") from error
            sleep(backoff_delay(failures, backoff_s, backoff_max_s))
            continue
        opened()
        if response is not None:
            return response
        failures = 0
        on_progress(status.resumable_progress, size)
