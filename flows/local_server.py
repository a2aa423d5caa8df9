"""covermill's local Prefect server: one `prefect server start` that `covermill server start` leaves
running in the background, and which the commands that run flows find, so that they skip Prefect's
temporary server (5-16 s before a command's first stage, every time).

Its record (pid, URL, log) is a small JSON file in PREFECT_HOME (default ~/.prefect), beside the
database Prefect keeps there: the server writes to that database whichever work folder a run uses,
so one server serves every work folder, and whoever has another PREFECT_HOME (a test, another user)
has a server of their own. Finding it is a file read and one HTTP GET: no Prefect import.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from covermill.flows.offline import OFFLINE_DEFAULTS
from covermill.tasks.core.atomic import write_json
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.host import process_alive
from covermill.tasks.core.orphans import TAG

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
RECORD_FILE = "covermill-server.json"
LOG_FILE = "covermill-server.log"
LOCK_FILE = "covermill-server.lock"
# `prefect server start` answered /api/health after 6-12 s here (a new database: its migrations), longer under load; Prefect's own wait
# for its temporary server is set to 90 s for the same reason (flows/offline.py)
START_TIMEOUT_S = 90.0
STOP_GRACE_S = 15.0  # SIGTERM stopped it in under 1 s here; SIGKILL after this
# a run's check: a healthy server answers in milliseconds; a hung one must not hold the run up long
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class LocalServer:
    """What `covermill server start` recorded about the server it started."""

    pid: int
    port: int
    url: str  # the API's URL, as PREFECT_API_URL takes it
    log: str
    started_at: float  # time.time()


class ServerDidNotStart(CovermillError):
    """The server ended, or did not answer in time; `tail` is the end of its log, to show below the sentence."""

    def __init__(self, sentence: str, tail: str):
        super().__init__(sentence)
        self.tail = tail


def prefect_home() -> Path:
    """PREFECT_HOME as Prefect reads it from the environment (default ~/.prefect)."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def api_url(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def read_record(home: Path) -> LocalServer | None:
    """The record `start` wrote in `home`; None when there is none (or it is not one of ours)."""
    try:
        return LocalServer(**json.loads((home / RECORD_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def forget(home: Path) -> None:
    (home / RECORD_FILE).unlink(missing_ok=True)


def is_ours(record: LocalServer) -> bool:
    """Whether the record's pid is still the server it started: alive, and running `prefect server
    start` on the record's port (a pid reused by another program, or a zombie, has another cmdline)."""
    if not process_alive(record.pid):
        return False
    try:
        arguments = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return "prefect" in arguments and "server" in arguments and "start" in arguments and str(record.port) in arguments


def answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a Prefect API at `url` answers its health check."""
    # no proxy: http_proxy in the environment would send a loopback request away
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (OSError, ValueError):  # refused, timed out, an HTTP error status
        return False


def running(home: Path) -> LocalServer | None:
    """The local server recorded in `home` when its process still runs (healthy or not)."""
    record = read_record(home)
    return record if record is not None and is_ours(record) else None


@contextmanager
def one_start_at_a_time(home: Path) -> Iterator[None]:
    """Held while a `covermill server start` looks for a server and starts one: a second start at the
    same moment waits, then finds the first one's server, instead of overwriting its record."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Prefect's own check: TIME_WAIT is free
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(the log is empty)"


def server_environment(port: int) -> dict[str, str]:
    """The server's environment: offline and quiet as covermill's commands, its UI pointed at its
    own API, and without covermill's command tag (tasks/core/orphans.py), whose guard would stop the
    server as soon as `covermill server start` returns."""
    environment = {**OFFLINE_DEFAULTS, **os.environ}
    environment.pop(TAG, None)
    environment.pop("PREFECT_API_URL", None)  # the server is the API; another one's URL means nothing to it
    # the UI asks this URL for its data: on any port but 4200 it fails without it (Prefect 3.8)
    environment["PREFECT_SERVER_UI_API_URL"] = api_url(port)
    return environment


def start(home: Path, port: int, timeout_s: float = START_TIMEOUT_S) -> LocalServer:
    """Start `prefect server start` on 127.0.0.1:`port`, detached (a session of its own, output to a
    log in `home`, which exists), record it, and return once /api/health answers. A CovermillError
    when the port is taken, or when the server ends or does not answer within `timeout_s` (it is
    stopped then)."""
    url = api_url(port)
    if port_taken(port):
        if answers(url):
            raise CovermillError(f"port {port}: a Prefect server that `covermill server start` did not start answers "
                                 f"there; use it with PREFECT_API_URL={url}, or give another port with --port.")
        raise CovermillError(f"port {port} on {HOST} is taken by another program; give another one with --port.")
    log = home / LOG_FILE
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=server_environment(port), cwd=home, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    record = LocalServer(pid=process.pid, port=port, url=url, log=str(log), started_at=time.time())
    write_json(home / RECORD_FILE, asdict(record))  # before it answers: `stop` can stop a server still starting
    deadline = time.monotonic() + timeout_s
    while not answers(url, timeout_s=1.0):
        if process.poll() is not None:
            forget(home)
            raise ServerDidNotStart(f"the Prefect server ended on start (exit code {process.returncode}); "
                                    f"its log {log} ends with the lines below.", log_tail(log))
        if time.monotonic() > deadline:
            stop(home, record)
            process.wait()  # our child: reaped here (stop waited for it to end)
            raise ServerDidNotStart(f"the Prefect server did not answer at {url}/health within {timeout_s:.0f} s and "
                                    f"was stopped; its log {log} ends with the lines below.", log_tail(log))
        time.sleep(0.25)
    return record


def stop(home: Path, record: LocalServer, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM the server's process group (its own session), SIGKILL after `grace_s`, and forget it;
    whether it had to be killed."""
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except OSError:  # gone meanwhile
        pass
    killed = not gone(record, grace_s)
    if killed:
        try:
            os.killpg(record.pid, signal.SIGKILL)
        except OSError:
            pass
        gone(record, 5.0)
    forget(home)
    return killed


def gone(record: LocalServer, within_s: float) -> bool:
    """Wait up to `within_s` for the server's process to end; whether it did."""
    deadline = time.monotonic() + within_s
    while is_ours(record):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def choose(configured: str | None, home: Path) -> tuple[str | None, str]:
    """Which Prefect server a command's flows use: (the URL to set as PREFECT_API_URL, or None to
    leave Prefect as it is; the line that tells the user). PREFECT_API_URL when set (`configured`),
    else the local server when it runs and answers, else Prefect's temporary server."""
    if configured:
        return None, f"using the Prefect server at {configured} (PREFECT_API_URL)"
    record = running(home)
    if record is not None and answers(record.url):
        return record.url, f"using the local Prefect server at {record.url} (covermill server start)"
    if record is not None:
        return None, (f"the local Prefect server at {record.url} does not answer (`covermill server status`); "
                      "starting a temporary Prefect server for this run")
    return None, "starting a temporary Prefect server for this run (`covermill server start` keeps one running: runs start at once)"
