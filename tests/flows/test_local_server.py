"""`covermill server start|status|stop` as a user meets them, from real processes: a real Prefect
server on a free port, detached and outliving the command (and its orphan guard), found by
`covermill run`, whose flow run is then on it; stale records, a taken port, a server that cannot
start; and which server a command says it uses when none runs or PREFECT_API_URL is set."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from covermill.flows.local_server import RECORD_FILE, LocalServer, answers, choose, is_ours
from covermill.tasks.core.host import process_alive
from covermill.tasks.core.orphans import MODULE as GUARD_MODULE

from conftest import free_port
from helpers import prefect_http, stop

COVERMILL = str(Path(sys.executable).with_name("covermill"))
USING_LOCAL = "using the local Prefect server at {url} (covermill server start)"
TEMPORARY = "starting a temporary Prefect server for this run (`covermill server start` keeps one running: runs start at once)"
NOT_RUNNING = 3


def environment(home: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    return env


def covermill(env: dict[str, str], *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([COVERMILL, *arguments], env=env, capture_output=True, text=True, timeout=timeout)


def record_in(home: Path) -> LocalServer:
    return LocalServer(**json.loads((home / RECORD_FILE).read_text()))


def kill_recorded(home: Path) -> None:
    """The safety net under `covermill server stop`: whatever server a record names is gone after a test."""
    try:
        record = record_in(home)
    except (OSError, ValueError):
        return
    if is_ours(record):
        os.killpg(record.pid, 9)


def guard_of(pid: int) -> list[int]:
    """Live orphan guards (tasks/core/orphans.py) watching command `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and GUARD_MODULE.encode() in arguments and str(pid).encode() in arguments:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """Two real `covermill server start` at the same moment, on a free port, in a PREFECT_HOME of
    this module's own: (record, env, the two commands' outputs); stopped afterwards, whatever the
    tests did."""
    home = tmp_path_factory.mktemp("local-server-home")
    env = environment(home)
    port = free_port()
    starts = [subprocess.Popen([COVERMILL, "server", "start", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = []
        for start in starts:
            output, errors = start.communicate(timeout=180)
            assert start.returncode == 0, output + errors
            outputs.append(output)
        # each command's orphan guard stops what the command leaves running, once it has ended: the
        # server must not be one of those (it would be gone within a second of the guard's SIGTERM)
        deadline = time.monotonic() + 30
        while any(guard_of(start.pid) for start in starts) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(guard_of(start.pid) for start in starts)
        yield record_in(home), env, outputs
    finally:
        stop(*starts)
        covermill(env, "server", "stop", timeout=60)
        kill_recorded(home)


@pytest.mark.server
def test_start_leaves_a_detached_server_that_status_reports(local_server):
    record, env, outputs = local_server
    started = [output for output in outputs if f"the local Prefect server runs at {record.url} (pid {record.pid}" in output]
    assert record.url == f"http://127.0.0.1:{record.port}/api" and len(started) == 1, outputs
    assert os.getsid(record.pid) == record.pid, "a session of its own: a Ctrl-C in the starting shell spares it"
    assert process_alive(record.pid) and answers(record.url), "it outlived the command and its guard"
    status = covermill(env, "server", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"runs at {record.url}" in status.stdout and f"pid:    {record.pid}, up " in status.stdout
    assert "health: answers" in status.stdout and f"UI:     http://127.0.0.1:{record.port}" in status.stdout
    doctor = covermill(env, "doctor")
    assert f"server: the local server at {record.url} (covermill server start)" in doctor.stdout, doctor.stdout


@pytest.mark.server
def test_start_again_says_so_and_keeps_the_server(local_server):
    record, env, outputs = local_server
    already = f"the local Prefect server already runs at {record.url} (pid {record.pid})."
    assert sorted(output.strip() == already for output in outputs) == [False, True], "the start at the same moment waited for the first"
    again = covermill(env, "server", "start", "--port", str(record.port))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == already
    assert record_in(Path(env["PREFECT_HOME"])) == record


@pytest.mark.server
def test_run_uses_the_local_server_and_its_flow_run_is_there(local_server, short_clips, tmp_path):
    record, env, _ = local_server
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"generate": {"generators": ["basic-pitch"]}, "arrange": {"seeds": [0]},
                                      "video": {"style": "still"}}))
    clip = short_clips["song_b"]
    result = covermill(env, "run", str(clip), "--out", str(tmp_path / "out"), "--config", str(config), "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = result.stdout.splitlines()
    using = lines.index(USING_LOCAL.format(url=record.url))
    assert using < next(n for n, line in enumerate(lines) if "Beginning flow run" in line), "said before the first flow"
    assert "Starting temporary server" not in result.stdout + result.stderr
    with prefect_http(record.url) as client:
        runs = client.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["cover_song"]}}}).json()
    assert [(run["parameters"]["source"], run["state_type"]) for run in runs] == [(str(clip), "COMPLETED")]


@pytest.mark.server
def test_prefect_api_url_wins_over_the_local_server(local_server, tmp_path):
    record, env, _ = local_server
    result = covermill({**env, "PREFECT_API_URL": record.url}, "publish", "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.stdout.splitlines()[0] == f"using the Prefect server at {record.url} (PREFECT_API_URL)"


@pytest.mark.server
def test_stop_stops_it_and_status_says_down(local_server):
    """Last in this module: it stops the module's server."""
    record, env, _ = local_server
    stopped = covermill(env, "server", "stop", timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.strip() == f"stopped the local Prefect server at {record.url} (pid {record.pid})."
    assert not is_ours(record) and not answers(record.url)
    assert not (Path(env["PREFECT_HOME"]) / RECORD_FILE).exists()
    status = covermill(env, "server", "status")
    assert status.returncode == NOT_RUNNING
    assert status.stdout.strip() == "no local Prefect server runs (`covermill server start` starts one)."
    again = covermill(env, "server", "stop")
    assert again.returncode == 0 and again.stdout.strip() == "no local Prefect server runs; nothing to stop."


def write_record(home: Path, pid: int, port: int = 4299) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / RECORD_FILE).write_text(json.dumps({"pid": pid, "port": port, "url": f"http://127.0.0.1:{port}/api",
                                                "log": str(home / "covermill-server.log"), "started_at": time.time()}))


def gone_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_a_record_whose_process_is_gone_counts_as_down(tmp_path):
    home = tmp_path / "prefect"
    write_record(home, gone_pid())
    status = covermill(environment(home), "server", "status")
    assert status.returncode == NOT_RUNNING and "is gone" in status.stdout, status.stdout + status.stderr
    stopped = covermill(environment(home), "server", "stop")
    assert stopped.returncode == 0 and "already gone; its record is removed" in stopped.stdout
    assert not (home / RECORD_FILE).exists()


def test_a_pid_reused_by_another_program_is_left_alone(tmp_path):
    home = tmp_path / "prefect"
    other = subprocess.Popen(["sleep", "300"])
    try:
        write_record(home, other.pid)
        status = covermill(environment(home), "server", "status")
        assert status.returncode == NOT_RUNNING and "is gone" in status.stdout, status.stdout + status.stderr
        stopped = covermill(environment(home), "server", "stop")
        assert stopped.returncode == 0 and "already gone" in stopped.stdout
        assert other.poll() is None, "stop sent nothing to a program that only took over the pid"
    finally:
        stop(other)


def test_a_taken_port_is_one_sentence(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = covermill(environment(tmp_path / "prefect"), "server", "start", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == f"covermill: port {port} on 127.0.0.1 is taken by another program; give another one with --port."
    assert not (tmp_path / "prefect" / RECORD_FILE).exists()


def test_a_server_that_cannot_start_shows_its_log(tmp_path):
    home = tmp_path / "prefect"
    env = {**environment(home), "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path}/missing/dir/prefect.db"}
    try:
        result = covermill(env, "server", "start", "--port", str(free_port()))
    finally:
        kill_recorded(home)
    assert result.returncode == 2, result.stdout + result.stderr
    sentence, *tail = result.stderr.splitlines()
    assert sentence.startswith("covermill: the Prefect server ended on start (exit code ")
    assert sentence.endswith(f"its log {home / 'covermill-server.log'} ends with the lines below.")
    assert any("unable to open database file" in line for line in tail), result.stderr
    assert not (home / RECORD_FILE).exists()


@pytest.mark.server
def test_without_a_server_a_run_says_it_starts_a_temporary_one(tmp_path):
    home = tmp_path / "prefect"
    write_record(home, gone_pid())  # a stale record is no server either
    result = covermill(environment(home), "publish", "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.stdout.splitlines()[0] == TEMPORARY


def test_which_server_a_command_uses(tmp_path):
    assert choose("http://10.0.0.5:4200/api", tmp_path) == (None, "using the Prefect server at http://10.0.0.5:4200/api (PREFECT_API_URL)")
    assert choose(None, tmp_path) == (None, TEMPORARY)


@pytest.mark.parametrize("command", [["server"], ["server", "start"], ["server", "status"], ["server", "stop"]])
def test_help_explains_with_examples(command):
    result = subprocess.run([COVERMILL, *command, "--help"], capture_output=True, text=True, check=True)
    assert "Example" in result.stdout and "covermill server" in result.stdout
