"""A real browser for tests: Debian's headless chromium, driven from its command line or over the
DevTools protocol (the `websockets` client that Prefect already installs; nothing else is added).

`screenshot` and `dump_dom` are chromium's own one-shot switches. Errors need DevTools: chromium's
`--enable-logging=stderr` prints uncaught JavaScript errors but says nothing about an image that
answers 404, so `open_page` listens to the page's exception, console, log and network events.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

WINDOW = (1400, 1100)
# Measured here: no sandbox (no user namespaces in the container), no GPU, nothing fetched behind
# the test's back (QUIC, component updates, sync, background networking).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
]
# Without a virtual time budget a single-page app (the Prefect UI) is captured before it has drawn.
VIRTUAL_TIME_MS = 15000


def chromium() -> str:
    if os.environ.get("COVERMILL_TEST_NO_BROWSER"):  # `make check`: the quick loop runs no browser
        raise RuntimeError("this test starts Chromium: mark it @pytest.mark.browser so that `make check` leaves it out.")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("chromium not found: install Debian's chromium package (make test does).")
    return found


def _command(profile: str, *extra: str) -> list[str]:
    return [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *extra]


def _one_shot(url: str, extra: list[str], timeout: float) -> str:
    """chromium's stdout for one page; its own process group, so nothing outlives a timeout."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(_command(profile, f"--virtual-time-budget={VIRTUAL_TIME_MS}", *extra, url),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"chromium did not finish {url} within {timeout} s") from None
        finally:
            _stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"chromium exited with {process.returncode} on {url}: {stderr[-2000:]}")
    return stdout


def screenshot(url: str, png: Path, timeout: float = 90) -> Path:
    """A PNG of the page as a 1400x1100 window shows it, once it has settled."""
    png = Path(png).absolute()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _one_shot(url, [f"--screenshot={png}"], timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot of {url}")
    return png


def dump_dom(url: str, timeout: float = 90) -> str:
    """The page's DOM after it has settled (scripts run), serialised as HTML."""
    return _one_shot(url, ["--dump-dom"], timeout)


class Page:
    """One tab over the DevTools protocol; `errors` gathers what a person would see in the console
    as an error: uncaught exceptions, console.error, failed or 4xx/5xx loads, CSP refusals."""

    def __init__(self, socket: ClientConnection, session: str):
        self._socket = socket
        self._session = session
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message_id = self._next_id
        message = {"id": message_id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline - time.monotonic())
            if message is None:
                raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        try:
            message = json.loads(self._socket.recv(timeout=max(timeout, 0)))
        except TimeoutError:
            return None
        if "method" in message and message.get("sessionId", "") == self._session:
            self._events.append(message)
            self._note(message["method"], message.get("params", {}))
        return message

    def _note(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"uncaught: {text.splitlines()[0] if text else 'exception'} ({details.get('url', '')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('source', 'log')}: {entry.get('text', '')} {entry.get('url', '')}".rstrip())
        elif method == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
            response = params["response"]
            self.errors.append(f"HTTP {response['status']}: {response.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.errors.append(f"load failed: {params.get('errorText', '')} ({params.get('type', '')})")

    def settle(self, quiet: float = 0.5, limit: float = 15) -> None:
        """Take events until none came for `quiet` seconds (late loads and errors land here)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._receive(min(quiet, deadline - time.monotonic())) is None:
                return

    def goto(self, url: str, timeout: float = 30) -> list[str]:
        """Navigate, wait for the load event and for the page to go quiet; the errors of this visit."""
        before, errors_before = len(self._events), len(self.errors)
        result = self.call("Page.navigate", timeout=timeout, url=url)
        if result.get("errorText"):
            self.errors.append(f"navigation: {result['errorText']} ({url})")
        else:
            deadline = time.monotonic() + timeout
            while not any(e["method"] == "Page.loadEventFired" for e in self._events[before:]):
                if self._receive(deadline - time.monotonic()) is None:
                    raise TimeoutError(f"{url} did not finish loading within {timeout} s")
            self.settle()
        return self.errors[errors_before:]

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The JSON value of a JavaScript expression in the page; promises are awaited."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")


def _devtools_address(profile: Path, process: subprocess.Popen, timeout: float) -> str:
    """chromium writes the port and browser path it chose (port 0) into the profile folder."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            lines = marker.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} before opening DevTools")
        time.sleep(0.05)
    raise TimeoutError(f"chromium opened no DevTools port within {timeout} s")


@contextmanager
def open_page(url: str, timeout: float = 60) -> Iterator[Page]:
    """A fresh headless chromium showing `url`, loaded and settled; errors so far are in `page.errors`."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            _command(profile, "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "about:blank"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the zygote and renderers go with it
        )
        try:
            with connect(_devtools_address(Path(profile), process, timeout), max_size=None, open_timeout=timeout) as socket:
                browser = Page(socket, session="")
                target = browser.call("Target.createTarget", url="about:blank")["targetId"]
                session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
                page = Page(socket, session)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    page.call(f"{domain}.enable")
                page.goto(url, timeout=timeout)
                yield page
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """End the browser and its helpers (its own process group); a no-op once it has exited, since
    a reaped process's id may already belong to someone else."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue


def page_errors(url: str) -> list[str]:
    """What went wrong while `url` loaded in a real browser; empty for a clean page."""
    with open_page(url) as page:
        return list(page.errors)
