"""`covermill serve` and `covermill worker` stop when asked, as systemd and container runtimes ask:
SIGTERM with a song in flight, against a real Prefect server on 127.0.0.1. Each exits 0 with one
line and no traceback, leaves no process of the run behind, leaves the run (whose tasks are the song's stages)
Cancelled (not Running for good), and the same source run again completes from the stages the
ledger had finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from covermill.models.host import ADDRESS, KEY, HostClient
from covermill.tasks.core.host import process_alive
from covermill.tasks.core.layout import ledger_path
from covermill.tasks.core.ledger import Ledger

from helpers import prefect_http, stop

pytestmark = pytest.mark.server

COVERMILL = str(Path(sys.executable).with_name("covermill"))
SONG = "covermill-song/cover-song"
POOL = "covermill-services-test-pool"
STOP_TIMEOUT_S = 90  # Prefect's kill grace is 30 s; a clean stop takes a few seconds (measured 5-12 s)


def until(check, timeout: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def said_line(said: list[str], text: str, times: int = 1, timeout: float = 60) -> str:
    """The last of the lines a service said (into `said`, from its threads) that hold `text`, once
    there are `times` of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in said if text in line]
        if len(found) >= times:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"not {times} lines with {text!r} in {said}")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (psutil is not installed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def processes_of_run(run_id: str) -> list[int]:
    """Live processes started for flow run `run_id` (Prefect puts PREFECT__FLOW_RUN_ID in their environment)."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0") and process_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def setup(prefect_api, short_clips, tmp_path_factory):
    api, env = prefect_api
    root = tmp_path_factory.mktemp("services")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "generate": {"generators": ["basic-pitch"]}, "arrange": {"seeds": [0]}, "video": {"style": "still"},
        "run_form": {"source_folders": [str(short_clips["song_a"].parent)]},
    }))
    with prefect_http(api) as client:
        yield client, env, root, config


def start_song(client, out: Path, source: Path) -> str:
    """A run of the cover-song deployment registered for `out`, as the UI's form starts one; its id."""
    deployment = client.get(f"/deployments/name/{SONG}").json()
    assert deployment["parameters"]["out_dir"] == str(out)
    run = client.post(f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"source": str(source)}})
    assert run.status_code == 201, run.text
    return run.json()["id"]


def song_in_flight(out: Path):
    """The song whose generate stage is done (the stages after it still running), once there is one."""
    if not ledger_path(out).exists():
        return None
    ledger = Ledger(ledger_path(out))
    return next((song for song in ledger.songs() if ledger.is_done(song.id, "generate")), None)


def environment_of(pid: int) -> dict[str, str]:
    pairs = (entry.split(b"=", 1) for entry in (Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")) if b"=" in entry)
    return {name.decode(): value.decode(errors="replace") for name, value in pairs}


def host_below(pid: int) -> HostClient | None:
    """The model host a service started, as its runs reach it: its socket is its argument, its key in
    its environment."""
    for child in descendants(pid):
        try:
            command = [part.decode() for part in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0") if part]
            if "covermill.models.host" in command:  # python -m covermill.models.host SOCKET
                return HostClient(command[-1], environment_of(child)[KEY])
        except OSError:
            continue
    return None


def check_models_hosted(process: subprocess.Popen, run_id: str) -> Path:
    """The run's process was sent to the service's model host, which loaded its transcriber; the host
    is the service's child and carries the command's tag, so the orphan guard stops it after a SIGKILL.
    Returns the host's private folder."""
    run_environment = environment_of(processes_of_run(run_id)[0])
    hosted = HostClient(run_environment[ADDRESS], run_environment[KEY]).call("ping")
    assert "basic-pitch" in hosted["loaded"] and hosted["pid"] in descendants(process.pid)
    # a run that finds its host gone says so in its log in the UI (Prefect's extra loggers)
    assert "covermill.models.host" in run_environment["PREFECT_LOGGING_EXTRA_LOGGERS"].split(",")
    assert environment_of(hosted["pid"])["COVERMILL_COMMAND"].endswith(f"~{process.pid}")
    folder = Path(run_environment[ADDRESS]).parent
    assert (folder.stat().st_mode & 0o777) == 0o700
    return folder


def stop_and_check(process: subprocess.Popen, log: Path, client, run_id: str) -> str:
    """SIGTERM `process` while `run_id` is in flight; checks what the stop leaves; its output."""
    host_folder = check_models_hosted(process, run_id)
    below = descendants(process.pid)
    assert processes_of_run(run_id), "the run has a process to stop"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0
    output = log.read_text()
    assert "stopped on SIGTERM" in output and "Traceback" not in output, output[-3000:]
    assert processes_of_run(run_id) == [], "no process of the run outlives the service"
    assert not host_folder.exists()
    deadline = time.monotonic() + 10  # reaped helpers (covermill's orphan guard) go within moments
    while any(process_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in below if process_alive(pid)], "nothing the service started is left"  # the model host included
    run = client.get(f"/flow_runs/{run_id}").json()
    subflows = client.post("/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}).json()
    assert [r["state_type"] for r in [run, *subflows]] == ["CANCELLED"] * (1 + len(subflows)), [run, *subflows]
    assert subflows == []  # the song's stages are the form's run's own tasks, not a subflow one click down
    tasks = client.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
    assert "generate" in {t["name"].rsplit("-", 1)[0] for t in tasks}, [t["name"] for t in tasks]
    logs = client.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}).json()
    assert any("basic-pitch: transcribing" in line["message"] for line in logs), [line["message"] for line in logs]
    return output


def test_serve_stops_on_sigterm_and_the_song_resumes(setup, short_clips):
    client, env, root, config = setup
    out, log = root / "served", root / "serve.log"
    with open(log, "w") as sink:
        serve = subprocess.Popen([COVERMILL, "serve", "--out", str(out), "--config", str(config)],
                                 env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=root)
    try:
        until(lambda: client.get(f"/deployments/name/{SONG}").json().get("parameters", {}).get("out_dir") == str(out),
              120, "the served deployment", serve, log)
        run_id = start_song(client, out, short_clips["song_a"])
        song = until(lambda: song_in_flight(out), 300, "the song's generate stage", serve, log)
        stop_and_check(serve, log, client, run_id)
    finally:
        stop(serve)

    ledger = Ledger(ledger_path(out))
    assert not ledger.is_done(song.id, "video")
    generated = ledger.stage_seconds(song.id)["generate"]
    again = subprocess.run([COVERMILL, "run", str(short_clips["song_a"]), "--out", str(out), "--config", str(config), "--dry-run"],
                           env=env, capture_output=True, text=True, cwd=root, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert ledger.is_done(song.id, "video")
    assert ledger.stage_seconds(song.id)["generate"] == generated  # the finished stage was kept, not redone


def test_worker_stops_on_sigterm_and_cancels_its_run(setup, short_clips):
    client, env, root, config = setup
    out, log = root / "pooled", root / "worker.log"
    deployed = subprocess.run([COVERMILL, "deploy", "--pool", POOL, "--out", str(out), "--config", str(config)],
                              env=env, capture_output=True, text=True, cwd=root)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with open(log, "w") as sink:
        worker = subprocess.Popen([COVERMILL, "worker", "--pool", POOL, "--config", str(config)], env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, cwd=root)
    try:
        until(lambda: "started" in log.read_text(), 90, "the worker", worker, log)
        # given the deployments' config, the worker's host loads its transcriber before any run asks
        host = until(lambda: host_below(worker.pid), 30, "the worker's model host", worker, log)
        until(lambda: "basic-pitch" in host.call("ping")["loaded"], 120, "basic-pitch loaded ahead", worker, log)
        run_id = start_song(client, out, short_clips["song_b"])
        until(lambda: song_in_flight(out), 300, "the song's generate stage", worker, log)
        stop_and_check(worker, log, client, run_id)
    finally:
        stop(worker)


def test_the_runs_are_told_of_the_model_host_while_the_service_runs_and_it_stops_with_it():
    from covermill.flows.services import hosting_models

    said: list[str] = []
    with hosting_models(True, said.append) as running:
        assert (os.environ[ADDRESS], os.environ[KEY]) == (running.client.address, running.client.key)
        assert HostClient(os.environ[ADDRESS], os.environ[KEY]).call("ping")["pid"] == running.process.pid
        assert said == [f"model host started (pid {running.process.pid}): runs share its loaded models."]
        assert running.client.key not in said[0]
    assert running.process.returncode == 0 and not Path(running.client.address).parent.exists()
    assert ADDRESS not in os.environ and KEY not in os.environ
    with hosting_models(False, said.append) as none:  # --no-model-host
        assert none is None and ADDRESS not in os.environ


def test_a_host_that_exits_is_restarted_where_the_runs_look_and_given_up_when_it_keeps_exiting(monkeypatch):
    from covermill.flows import services

    monkeypatch.setattr(services, "HOST_CHECK_S", 0.1)
    monkeypatch.setattr(services, "HOST_RESTARTS", (1, 600.0))  # one restart, then the runs load their own

    said: list[str] = []
    preload = [("pop2piano", '{"model": "/nonexistent/pop2piano"}')]  # asked again of the new host
    with services.hosting_models(True, said.append, preload) as running:
        said_line(said, "could not load pop2piano ahead")
        first = running.process.pid
        os.kill(first, signal.SIGKILL)  # as the kernel's OOM killer would
        assert said_line(said, "restarted it") == f"the model host exited (exit code -9); restarted it (pid {running.process.pid})."
        # the same socket and key the runs' environment names: a new run finds the new host
        assert HostClient(os.environ[ADDRESS], os.environ[KEY]).call("ping")["pid"] == running.process.pid != first
        said_line(said, "could not load pop2piano ahead", times=2)

        os.kill(running.process.pid, signal.SIGKILL)
        gave_up = said_line(said, "not restarting it")
        assert "2 times in 10 minutes" in gave_up and "each run loads its models itself" in gave_up
        time.sleep(0.5)
        assert running.process.poll() is not None  # left down
    assert not Path(running.client.address).parent.exists()


def test_a_host_asked_to_stop_is_not_restarted(monkeypatch):
    from covermill.flows import services

    monkeypatch.setattr(services, "HOST_CHECK_S", 0.1)
    said: list[str] = []
    with services.hosting_models(True, said.append) as running:
        running.process.send_signal(signal.SIGTERM)  # as systemd's stop signals the service's whole group
        said_line(said, "was stopped")
        time.sleep(0.5)
        assert said[1:] == ["the model host was stopped (SIGTERM); not restarting it: each run loads its models itself."]
        assert running.process.returncode == 0


def test_serve_loads_the_configured_generators_in_the_host_before_any_run():
    from covermill.flows.services import hosting_models
    from covermill.models.generator import generator_options

    said: list[str] = []
    preload = [("basic-pitch", generator_options("basic-pitch").model_dump_json()), ("pop2piano", '{"model": "/nonexistent/pop2piano"}')]
    with hosting_models(True, said.append, preload) as running:
        said_line(said, "could not load pop2piano ahead", timeout=120)  # after basic-pitch's load
        facts = running.client.call("ping")
    assert facts["loaded"] == ["basic-pitch"] and facts["loads"] == 1, facts
    assert said[1].startswith("the model host could not load pop2piano ahead (ModelMissing: "), said
    assert "runs load it when they need it" in said[1]
