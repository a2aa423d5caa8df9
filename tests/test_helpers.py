"""The test helpers themselves: the Prefect API client retries what Prefect's own client retries
(against a real HTTP server on 127.0.0.1), and no test reads the user's config.yaml."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from covermill.flows.config import CovermillConfig, load_config

from helpers import RetryingTransport, prefect_http


@contextmanager
def scripted_server(*answers: tuple[int, dict[str, str]]) -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP server on 127.0.0.1 that gives `answers` (status, headers) in order, repeating the
    last one; yields its URL and the requests it saw (method, path, body)."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"method": self.command, "path": self.path, "body": body})
            status, headers = answers[min(len(seen), len(answers)) - 1]
            text = json.dumps({"try": len(seen)}).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)  # a quick shutdown()
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", seen
    finally:
        server.shutdown()
        server.server_close()


def between(waited: float, seconds: float, jitter: float = 0.2) -> bool:
    """Prefect's symmetric jitter keeps a wait within about -18%..+20% of its nominal length."""
    return seconds * 0.8 <= waited <= seconds * (1 + jitter)


def test_a_503_twice_then_200_is_retried_with_the_same_request():
    waits: list[float] = []
    with scripted_server((503, {}), (503, {}), (200, {})) as (api, seen), prefect_http(api, sleep=waits.append) as client:
        response = client.post("/deployments/some-id/create_flow_run", json={"parameters": {"source": "x.ogg"}})
    assert response.status_code == 200 and response.json() == {"try": 3}
    assert [r["path"] for r in seen] == ["/api/deployments/some-id/create_flow_run"] * 3
    assert len({r["body"] for r in seen}) == 1 and json.loads(seen[0]["body"]) == {"parameters": {"source": "x.ogg"}}
    assert len(waits) == 2 and between(waits[0], 2) and between(waits[1], 4), waits  # 2**try seconds, jittered


def test_an_api_that_stays_503_is_given_up_on_with_the_503_visible():
    waits: list[float] = []
    with scripted_server((503, {})) as (api, seen), prefect_http(api, retries=3, sleep=waits.append) as client:
        response = client.get("/health")
    assert response.status_code == 503 and response.json() == {"try": 4}
    assert len(seen) == 4 and len(waits) == 3  # one try and 3 retries
    with pytest.raises(httpx.HTTPStatusError, match="503 Service Unavailable"):
        response.raise_for_status()


def test_retry_after_is_honoured_and_429_and_502_are_retried_too():
    waits: list[float] = []
    with scripted_server((429, {"Retry-After": "3"}), (502, {}), (200, {})) as (api, seen), \
            prefect_http(api, sleep=waits.append) as client:
        assert client.get("/flow_runs/x").status_code == 200
    assert len(seen) == 3
    assert 3 <= waits[0] <= 3 * 1.2 and between(waits[1], 4), waits  # never sooner than the server asked


def test_other_errors_come_back_at_once():
    waits: list[float] = []
    for status in (409, 404, 500):
        with scripted_server((status, {}), (200, {})) as (api, seen), prefect_http(api, sleep=waits.append) as client:
            assert client.get("/deployments/name/x/y").status_code == status
        assert len(seen) == 1
    assert waits == []


def test_a_connection_error_is_retried_then_raised():
    with scripted_server((200, {})) as (api, _):
        pass  # the port is closed again: nothing listens there now
    waits: list[float] = []
    with prefect_http(api, retries=2, sleep=waits.append) as client, pytest.raises(httpx.ConnectError):
        client.get("/health")
    assert len(waits) == 2 and between(waits[0], 2) and between(waits[1], 4), waits


def test_a_real_wait_the_server_asks_for():
    with scripted_server((503, {"Retry-After": "0"}), (200, {})) as (api, seen), prefect_http(api) as client:
        assert client.get("/health").status_code == 200
    assert len(seen) == 2


def test_the_retries_follow_prefects_settings():
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, PREFECT_CLIENT_RETRY_JITTER_FACTOR, temporary_settings

    transport = RetryingTransport()
    assert (transport.retries, transport.jitter) == (PREFECT_CLIENT_MAX_RETRIES.value(), PREFECT_CLIENT_RETRY_JITTER_FACTOR.value())
    assert transport.statuses >= {429, 502, 503}
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 1, PREFECT_CLIENT_RETRY_JITTER_FACTOR: 0}):
        transport = RetryingTransport()
        assert (transport.retries, transport.jitter) == (1, 0) and transport.delay(3, None) == 8


def test_no_test_reads_the_users_config_yaml():
    """conftest runs the tests from an empty folder: `load_config(None)` and the CLI without
    --config see the settings models' defaults, whatever the user's ./config.yaml says."""
    assert not Path("config.yaml").exists()
    assert load_config(None) == CovermillConfig()
