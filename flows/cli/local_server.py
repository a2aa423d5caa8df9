"""`covermill server start|status|stop`: covermill's local Prefect server (flows/local_server.py),
which `covermill run`, `nightly` and `publish` use while it runs instead of starting Prefect's
temporary server each time."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from covermill.flows.cli.common import app, one_sentence_on_error, plain, say_error
from covermill.flows.local_server import (
    DEFAULT_PORT,
    HOST,
    LOG_FILE,
    RECORD_FILE,
    START_TIMEOUT_S,
    STOP_GRACE_S,
    ServerDidNotStart,
    answers,
    forget,
    is_ours,
    one_start_at_a_time,
    prefect_home,
    read_record,
    running,
)
from covermill.flows.local_server import start as start_server
from covermill.flows.local_server import stop as stop_server

NOT_ANSWERING = 1  # `status`: the process runs but its API does not answer (starting, or hung)
NOT_RUNNING = 3  # `status`: no server runs, as an init script's status says (LSB: "program is not running")

server_app = typer.Typer(
    help=(
        "Keep a local Prefect server running in the background, so that `covermill run`, `nightly` "
        "and `publish` start their first stage at once instead of starting Prefect's temporary "
        "server each time (5-16 s). It listens on 127.0.0.1 only; its database, record and log "
        "are in PREFECT_HOME (default ~/.prefect), so one server serves every work folder. A "
        "command that runs flows says in one line which server it uses; PREFECT_API_URL, when "
        "set, wins.\n\n"
        "Examples:\n\n"
        "  covermill server start\n\n"
        "  covermill server status\n\n"
        "  covermill server stop"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(server_app, name="server")

Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1 for the API and the UI.")]


def uptime(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def ui_url(port: int) -> str:
    return f"http://{HOST}:{port}"


@server_app.command(
    help=(
        "Start the local Prefect server in the background (`prefect server start --host 127.0.0.1 "
        f"--port PORT`, detached: it outlives this command) and return once it answers (6-12 s here, at most "
        f"{START_TIMEOUT_S:.0f} s). Its pid, URL and log are recorded in PREFECT_HOME/{RECORD_FILE}; "
        f"the log is PREFECT_HOME/{LOG_FILE}. When one already runs (or another start is starting one), "
        "says so and exits 0. Exit code 2 "
        "when the port is taken or the server does not start (the log's last lines are shown).\n\n"
        "Examples:\n\n"
        "  covermill server start\n\n"
        "  covermill server start --port 4300"
    )
)
def start(port: Port = DEFAULT_PORT) -> None:
    home = prefect_home()
    with one_start_at_a_time(home):
        record = running(home)
        if record is not None:
            state = "" if answers(record.url) else "; it does not answer yet (`covermill server status`)"
            print(f"the local Prefect server already runs at {record.url} (pid {record.pid}){state}.")
            return
        forget(home)  # a record whose process is gone
        print(f"starting the local Prefect server on {HOST}:{port} (log: {home / LOG_FILE}) ...", flush=True)
        began = time.monotonic()
        with one_sentence_on_error():  # the port taken
            try:
                record = start_server(home, port)
            except ServerDidNotStart as failure:  # the sentence, then what the log says
                say_error(str(failure))
                for line in failure.tail.splitlines():
                    print(f"  {plain(line)}", file=sys.stderr)
                raise typer.Exit(2) from None
    print(f"the local Prefect server runs at {record.url} (pid {record.pid}, answered after "
          f"{time.monotonic() - began:.1f} s); UI: {ui_url(port)}\n"
          "`covermill run`, `nightly` and `publish` use it now; `covermill server stop` stops it.")


@server_app.command(
    help=(
        "Tell whether the local Prefect server runs: its URL, pid, uptime, health and log. Exit "
        f"code 0 when it runs and answers, {NOT_ANSWERING} when its process runs but its API does not "
        f"answer (still starting, or hung: see the log), {NOT_RUNNING} when none runs (also when the "
        "recorded process is gone, or its pid now belongs to another program).\n\n"
        "Examples:\n\n"
        "  covermill server status\n\n"
        "  covermill server status || covermill server start"
    )
)
def status() -> None:
    home = prefect_home()
    record = read_record(home)
    if record is None:
        print("no local Prefect server runs (`covermill server start` starts one).")
        raise typer.Exit(NOT_RUNNING)
    if not is_ours(record):
        print(f"no local Prefect server runs: the one recorded in {home / RECORD_FILE} (pid {record.pid}) is gone "
              "(`covermill server start` starts one).")
        raise typer.Exit(NOT_RUNNING)
    healthy = answers(record.url)
    print(f"the local Prefect server runs at {record.url}\n"
          f"  pid:    {record.pid}, up {uptime(time.time() - record.started_at)}\n"
          f"  health: {'answers' if healthy else 'does not answer (still starting, or hung: see its log)'}\n"
          f"  UI:     {ui_url(record.port)}\n"
          f"  log:    {record.log}")
    if not healthy:
        raise typer.Exit(NOT_ANSWERING)


@server_app.command(
    help=(
        f"Stop the local Prefect server: SIGTERM, then SIGKILL after {STOP_GRACE_S:.0f} s, and remove its "
        "record. Runs still using it lose their server: stop it between runs. When none runs, says "
        "so and exits 0. Its database stays in PREFECT_HOME: the next start shows the same runs.\n\n"
        "Example:\n\n"
        "  covermill server stop"
    )
)
def stop() -> None:
    home = prefect_home()
    record = read_record(home)
    if record is None:
        print("no local Prefect server runs; nothing to stop.")
        return
    if not is_ours(record):
        forget(home)
        print(f"no local Prefect server runs: the one recorded (pid {record.pid}) was already gone; its record is removed.")
        return
    killed = stop_server(home, record)
    how = f" (killed: it did not stop within {STOP_GRACE_S:.0f} s of SIGTERM)" if killed else ""
    print(f"stopped the local Prefect server at {record.url} (pid {record.pid}){how}.")

