"""covermill's long-running Prefect services, `covermill serve` and `covermill worker`, and how they
stop: on SIGTERM (systemd, container runtimes) or Ctrl-C they take no new run, cancel the runs in
flight (their process gets SIGTERM, then SIGKILL after Prefect's 30 s grace; the run and its
subflow are marked Cancelled, not left Running), and return. A song's ledger keeps its finished
stages, so the same source run again redoes only the unfinished stage.

Measured with prefect 3.8.8 and a song in flight: `prefect.serve` exits ~2 s after SIGTERM but its
runner's handler calls the async `stop()` from a signal handler (a coroutine never awaited) and then
`sys.exit(0)` unwinds the loop: a CancelledError traceback from the runner's control channel, and
the flow run and its subflow left Running for good. `prefect worker start` does not stop at all on
SIGTERM or one Ctrl-C (it forwards SIGINT to itself, which is lost; a second signal SIGKILLs it).
Here a signal only hands work to the event loop, which winds down on the runner's and the worker's
own paths.

Both run each flow run in a process of its own, so both first start a model host (models/host.py)
that keeps the models loaded and warm across those processes, restart it should it exit under them
(killed for memory, crashed), and stop it once they have stopped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
CANCEL_WAIT_SECONDS = 60  # Prefect's kill grace (30 s) plus the cancelling observer's polling
HOST_CHECK_S = 2.0  # how often the service looks whether its model host still runs
# A host that exits this often is not worth restarting (a model that crashes it on every load):
# the runs load their models themselves, as they do with no host, until the service restarts.
HOST_RESTARTS = (3, 600.0)  # at most 3 restarts within 600 s
EXTRA_LOGGERS = "PREFECT_LOGGING_EXTRA_LOGGERS"


@contextmanager
def hosting_models(enabled: bool = True, printer: Callable[[str], None] = print,
                   preload: Sequence[tuple[str, str]] = ()) -> Iterator[Any]:
    """A model host for the runs this process starts while inside: started, named in os.environ
    (Prefect's Runner and ProcessWorker pass it to every flow-run process), stopped on the way out;
    the generators in `preload` ((name, options as JSON)) loaded and warmed there at once, in the
    background, so that not even the first run pays it. Yields the RunningHost, or None when disabled
    or it did not start (each run then loads its own)."""
    if not enabled:
        yield None
        return
    from covermill.models import host
    from covermill.tasks.core.leftovers import leftover_tag

    # 0700 (mkdtemp): only this user reaches the socket. Named as covermill's temporaries are, so the
    # next run removes it should this process be SIGKILLed (tasks/core/leftovers.py).
    folder = Path(tempfile.mkdtemp(prefix=f"covermill-model-host-{leftover_tag()}-"))
    try:
        running = host.start(str(folder / "socket"))
    except host.HostGone as exc:
        printer(f"the model host did not start ({exc}); each run loads its models itself.")
        running = None
    if running is None:
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    extra = os.environ.get(EXTRA_LOGGERS)
    # the runs' line saying they load their models themselves (host gone) reaches their log in the UI
    added = {**running.environment, EXTRA_LOGGERS: ",".join(filter(None, [extra, host.MODULE]))}
    before = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    printer(f"model host started (pid {running.process.pid}): runs share its loaded models.")
    load_in_background(running.client, list(preload), printer)
    stopping = threading.Event()
    watcher = threading.Thread(target=keep_host_running, args=(running, stopping, printer, list(preload), HOST_CHECK_S, HOST_RESTARTS),
                               name="covermill-model-host-watch", daemon=True)
    watcher.start()
    try:
        yield running
    finally:
        stopping.set()
        watcher.join()  # not restarting it while it is stopped
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def keep_host_running(running: Any, stopping: threading.Event, printer: Callable[[str], None],
                      preload: list[tuple[str, str]], check_s: float, restarts: tuple[int, float]) -> None:
    """Until `stopping`: a host that exited is started again at the same socket (the runs' environment
    still names it; a run that lost the old one mid-call finished its song itself), and the `preload`
    loaded there again. Gives up, in one line, after `restarts` (count, within seconds)."""
    from covermill.models import host

    most, window_s = restarts
    recent: list[float] = []
    while not stopping.wait(check_s):
        if running.process.poll() is None:
            continue
        code = running.process.returncode
        if code == 0:  # it exits 0 only on SIGTERM: asked to stop (systemd signals the whole group), not crashed
            printer("the model host was stopped (SIGTERM); not restarting it: each run loads its models itself.")
            return
        now = time.monotonic()
        recent = [at for at in recent if now - at < window_s] + [now]
        if len(recent) > most:
            printer(f"the model host exited again (exit code {code}), {most + 1} times in {window_s / 60:.0f} minutes; "
                    "not restarting it: each run loads its models itself until this service restarts.")
            return
        try:
            running.restart()
        except host.HostGone as exc:
            printer(f"the model host exited (exit code {code}) and did not start again ({exc}); each run loads its models itself.")
            return
        printer(f"the model host exited (exit code {code}); restarted it (pid {running.process.pid}).")
        load_in_background(running.client, preload, printer)


def load_in_background(client: Any, generators: list[tuple[str, str]], printer: Callable[[str], None]) -> None:
    """`load_ahead` in a thread of its own: neither the service's start nor its watch on the host
    (nor its stop) waits for a model to load."""
    if generators:
        threading.Thread(target=load_ahead, args=(client, generators, printer), name="covermill-model-preload", daemon=True).start()


def load_ahead(client: Any, generators: list[tuple[str, str]], printer: Callable[[str], None]) -> None:
    """Load (and warm) each generator in the host before any run asks; one line for one that fails (a
    missing model: the runs that need it say so in their own log)."""
    for name, options_json in generators:
        try:
            client.call("load", name, options_json)
        except Exception as exc:  # noqa: BLE001 - the host's answer, or the host gone: the runs meet it again
            printer(f"the model host could not load {name} ahead ({type(exc).__name__}: {exc}); runs load it when they need it.")


def serve_until_stopped(deployments: list[Any], model_host: bool = True,
                        printer: Callable[[str], None] = print, preload: Sequence[tuple[str, str]] = ()) -> str | None:
    """Serve `deployments` (RunnerDeployments) from this process until SIGTERM or SIGINT, their runs'
    models in a model host unless `model_host` is False (`preload`ed there at once); the name of the
    signal that stopped it (None: the runner ended on its own)."""
    from prefect.runner import Runner

    runner = Runner()
    for deployment in deployments:
        runner.add_deployment(deployment)
    with hosting_models(model_host, printer, preload):
        return asyncio.run(_serve(runner))


async def _serve(runner: Any) -> str | None:
    loop = asyncio.get_running_loop()
    received: list[str] = []
    stopping: list[asyncio.Task] = []

    def stop(signum: int, _frame: Any = None) -> None:
        if received:  # a second Ctrl-C while runs wind down: the first stop is already bounded
            return
        received.append(signal.Signals(signum).name)
        # A signal.signal handler runs between two bytecodes of the loop's own thread: only hand over.
        loop.call_soon_threadsafe(lambda: stopping.append(loop.create_task(runner.astop())))

    # Runner.start installs `self.handle_sigterm` for SIGTERM; Runner.astop cancels the runs in flight.
    runner.handle_sigterm = stop
    previous_sigint = signal.signal(signal.SIGINT, stop)
    try:
        await runner.start()
        for task in stopping:
            await task
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
    return received[0] if received else None


def work_until_stopped(pool: str, limit: int | None, name: str | None, printer: Callable[[str], None] = print,
                       model_host: bool = True, preload: Sequence[tuple[str, str]] = ()) -> str | None:
    """Run a Prefect process worker on `pool` until SIGTERM or SIGINT, its runs' models in a model
    host unless `model_host` is False (`preload`ed there at once); the name of the signal that
    stopped it (None: the worker ended on its own)."""
    from prefect.workers.process import ProcessWorker

    worker = ProcessWorker(work_pool_name=pool, limit=limit, name=name)
    with hosting_models(model_host, printer, preload):
        return asyncio.run(_work(worker, printer))


async def _work(worker: Any, printer: Callable[[str], None]) -> str | None:
    loop = asyncio.get_running_loop()
    received: list[str] = []
    in_flight: set[UUID] = set()
    take_runs, run = worker.get_and_submit_flow_runs, worker.run

    # Instance attributes, read by ProcessWorker.start and its submit path: the polling loop takes
    # nothing once stopping, and the runs this worker executes are known by id.
    async def take_runs_unless_stopping() -> list[Any]:
        return [] if received else await take_runs()

    async def run_and_track(flow_run: Any, *args: Any, **kwargs: Any) -> Any:
        in_flight.add(flow_run.id)
        try:
            return await run(flow_run, *args, **kwargs)
        finally:
            in_flight.discard(flow_run.id)

    worker.get_and_submit_flow_runs, worker.run = take_runs_unless_stopping, run_and_track
    working = asyncio.ensure_future(worker.start(printer=printer))
    stopped = asyncio.Event()

    def stop(signum: int) -> None:
        if not received:
            received.append(signal.Signals(signum).name)
            stopped.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        waiting = asyncio.ensure_future(stopped.wait())
        await asyncio.wait({working, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if received and not working.done():
            await _cancel_runs(in_flight, f"the worker stopped on {received[0]}")
            working.cancel()
        try:
            await working
        except asyncio.CancelledError:
            pass
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    return received[0] if received else None


async def _cancel_runs(in_flight: set[UUID], why: str) -> None:
    """Ask Prefect to cancel the runs in flight, as the UI's Cancel does: the worker's own
    cancellation path stops each run's process (the engine marks the subflow Cancelled) and marks
    the run Cancelled. Returns when none is left, or after CANCEL_WAIT_SECONDS."""
    from prefect.client.orchestration import get_client
    from prefect.logging import get_logger
    from prefect.states import Cancelling

    runs = set(in_flight)
    try:
        async with get_client() as client:
            for flow_run_id in runs:
                await client.set_flow_run_state(flow_run_id, Cancelling(message=f"{why}; run the song again to resume it"))
    except Exception as exc:  # the API is unreachable: stop anyway (the runs' processes end with the worker)
        get_logger("covermill.worker").warning("could not mark the runs in flight cancelled (%s); they stay Running in Prefect", exc)
        return
    deadline = loop_time() + CANCEL_WAIT_SECONDS
    while in_flight & runs and loop_time() < deadline:
        await asyncio.sleep(0.5)


def loop_time() -> float:
    return asyncio.get_running_loop().time()
