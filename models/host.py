"""The model host: one long-lived process that loads each generator once and answers the runs' model calls.

`covermill serve` and `covermill worker` run every flow run in a new process (Prefect's Runner and
ProcessWorker), which would load and warm the models again for every song (on an H200 the first
song of a process costs 13-26 s more). So they start this host first and name it in the
environment their runs inherit (COVERMILL_MODEL_HOST: a Unix socket in a private folder;
COVERMILL_MODEL_HOST_KEY: the connection's authkey, random per start, never logged or put on a
command line). Then `load_generator` (models/generator.py) returns a `HostedGenerator` with the
generator's interface, whose calls run here, where models/generator.py's per-process cache keeps
them loaded and warm. A run whose host does not answer, or dies mid-call, loads its models itself
and says so once in its log: the host never fails a song.

One connection is one request: (request, args) in, then ("progress", line)* and ("result", value)
or ("error", exception) out. Model work runs one request at a time (the GPU is serialised anyway);
`ping` and `prefetch` answer at once beside it.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from multiprocessing.connection import AuthenticationError, Client, Connection, Listener
from pathlib import Path
from typing import Any

from covermill.models.device import Hold
from covermill.models.errors import BrokenGenerator, ModelMissing, OutOfMemory, SongNotSupported, UnknownGenerator
from covermill.models.generator import Generator, Variant, cover_variants, load_generator, prefetch
from covermill.models.notes import Note
from covermill.models.options import ModelOptions

ADDRESS = "COVERMILL_MODEL_HOST"  # environment: the host's Unix socket
KEY = "COVERMILL_MODEL_HOST_KEY"  # environment: its authkey, hex
MODULE = "covermill.models.host"
START_TIMEOUT_S = 60.0  # the host imports no model library before its first load: it answers within a second or two
EXPECTED = (SongNotSupported, ModelMissing, OutOfMemory, BrokenGenerator, UnknownGenerator)  # the callers act on these

log = logging.getLogger(MODULE)


class HostGone(Exception):
    """The model host did not answer: not started, stopped, or died mid-call."""


class RunGone(Exception):
    """The run that asked hung up (its run was cancelled): the host stops its work at the next progress line."""


def _talk(action: Callable[..., Any], *args: Any) -> Any:
    """`action(*args)` on the host's socket, its failures as HostGone (the model's own errors come as
    messages); a ValueError is an environment that names no usable socket or key."""
    try:
        return action(*args)
    except (OSError, EOFError, AuthenticationError, ValueError) as exc:
        raise HostGone(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc


@dataclass(frozen=True)
class HostClient:
    """Where a host listens and its key: each call is one connection."""

    address: str
    key: str = field(repr=False)  # hex; kept out of any log line or traceback that shows the client

    def call(self, request: str, *args: Any, progress: Callable[[str], None] | None = None) -> Any:
        """The host's answer to `request`; an exception raised there is raised here, with its type and
        message; `progress` hears the lines the model reports on the way."""
        with _talk(lambda: Client(self.address, "AF_UNIX", bytes.fromhex(self.key))) as connection:
            _talk(connection.send, (request, args))
            while True:
                kind, value = _talk(connection.recv)
                if kind == "progress":
                    if progress is not None:
                        progress(value)
                elif kind == "error":
                    raise value
                else:
                    return value


# --- the runs' side: which host this process uses, and the generators it forwards to

_hosts: list[HostClient | None] = []  # [] until this process first asks; [None]: none named, it did not answer, or it died
_asking = threading.Lock()  # the nightly's song-ahead thread may ask at the same moment as the song's own stage


def current_host() -> HostClient | None:
    """The host the environment names, once it answered a ping; None when there is none to use."""
    with _asking:
        if not _hosts:
            address, key = os.environ.get(ADDRESS), os.environ.get(KEY)
            found = HostClient(address, key) if address and key else None
            if found is not None:
                try:
                    found.call("ping")
                except HostGone as exc:
                    _say_lost(found, exc)
                    found = None
            _hosts.append(found)
        return _hosts[0]


def lost(exc: HostGone) -> None:
    """The host stopped answering: this process loads its models itself from now on (said once)."""
    with _asking:
        if _hosts and _hosts[0] is not None:
            _say_lost(_hosts[0], exc)
        _hosts[:] = [None]


def _say_lost(host: HostClient, exc: HostGone) -> None:
    log.warning("the model host at %s did not answer (%s); this run loads its models itself", host.address, exc)


class HostedGenerator:
    """A generator loaded in the model host, with the generator's interface: its calls run there,
    and here when the host is gone (the song is made either way)."""

    def __init__(self, host: HostClient, name: str, options: ModelOptions, holds_gpu_slot: bool):
        self.host, self.name, self.options = host, name, options
        self.holds_gpu_slot = holds_gpu_slot  # the host's generator's: the caller holds the slot around transcribe
        self._options_json = options.model_dump_json()

    def here(self) -> Generator:
        return load_generator(self.name, self.options)  # the host is marked lost first: this loads in this process

    def variants(self) -> list[Variant]:
        return cover_variants(self.name, self.options) or []

    def transcribe(self, audio_path: Path) -> list[Note]:
        try:
            return self.host.call("transcribe", self.name, self._options_json, str(audio_path))
        except HostGone as exc:
            lost(exc)
        return self.here().transcribe(audio_path)

    def cover(self, audio_path: Path, variants: list[Variant] | None = None, hold: Hold | None = None,
              progress: Callable[[str], None] | None = None) -> dict[Variant, list[Note]]:
        variants = list(variants if variants is not None else self.variants())
        try:
            # The slot is held around the whole call, not around each generate call as in-process: the
            # host would have to wait for this run's slot while other runs wait for the host, and one
            # of them may hold the slot already (a transcribe is held by its caller): a deadlock.
            # Slot first, host second, for every call, keeps the order one.
            with (hold or nullcontext)():
                return self.host.call("cover", self.name, self._options_json, str(audio_path),
                                      [tuple(v) for v in variants], progress=progress)
        except HostGone as exc:
            lost(exc)
        return self.here().cover(audio_path, variants, hold, progress)


def hosted_generator(name: str, options: ModelOptions) -> HostedGenerator | None:
    """The generator loaded (and warmed) in the host, as a HostedGenerator; None without a host.
    A model's own error at load (ModelMissing) is raised here as it would be in-process."""
    host = current_host()
    if host is None:
        return None
    try:
        facts = host.call("load", name, options.model_dump_json())
    except HostGone as exc:
        lost(exc)
        return None
    return HostedGenerator(host, name, options, facts["holds_gpu_slot"])


def forward_prefetch(name: str, options: ModelOptions, audio_path: Path) -> bool:
    """Start the song's prefetch in the host, whose generator takes it; False without a host."""
    host = current_host()
    if host is None:
        return False
    try:
        host.call("prefetch", name, options.model_dump_json(), str(audio_path))
    except HostGone as exc:
        lost(exc)
        return False
    return True


# --- the host's side

class Host:
    """What the host process keeps: the generators it loaded and what loading them cost."""

    def __init__(self) -> None:
        # model work one request at a time: the GPU is serialised anyway, and free memory sizes a
        # cover's batches (models/gpu_memory.py) only while nothing else runs on it
        self.working = threading.Lock()
        self.generators: dict[tuple[str, str], Generator] = {}
        self.loads = self.warmups = 0

    def generator(self, name: str, options_json: str) -> Generator:
        key = (name, options_json)
        if key not in self.generators:
            loaded = load_generator(name, json.loads(options_json))
            self.generators[key] = loaded
            self.loads += 1
            self.warmups += getattr(loaded, "warmup_s", 0.0) > 0
        return self.generators[key]

    def answer(self, request: str, args: tuple, progress: Callable[[str], None]) -> Any:
        if request == "ping":
            return {"pid": os.getpid(), "loaded": [name for name, _ in self.generators],
                    "loads": self.loads, "warmups": self.warmups}
        if request == "prefetch":  # not behind a cover: the nightly asks for the next song's while this one's cover runs
            name, options_json, audio_path = args
            return prefetch(name, json.loads(options_json), Path(audio_path))
        with self.working:
            if request == "load":
                return {"holds_gpu_slot": bool(getattr(self.generator(*args), "holds_gpu_slot", False))}
            if request == "transcribe":
                name, options_json, audio_path = args
                return self.generator(name, options_json).transcribe(Path(audio_path))
            if request == "cover":
                name, options_json, audio_path, variants = args
                return self.generator(name, options_json).cover(Path(audio_path), [Variant(*v) for v in variants],
                                                                progress=progress)
        raise ValueError(f"the model host has no request {request!r}")

    def answer_on(self, connection: Connection) -> None:
        """One request on `connection`, its progress lines, then its result or its exception."""
        with connection:
            try:
                request, args = connection.recv()
            except (OSError, EOFError):
                return

            def tell(line: str) -> None:
                try:
                    connection.send(("progress", line))
                except OSError as exc:
                    raise RunGone from exc

            try:
                reply = ("result", self.answer(request, args, tell))
            except RunGone:
                return
            except Exception as exc:  # noqa: BLE001 - every error goes back to the run that asked
                if not isinstance(exc, EXPECTED):
                    traceback.print_exc()  # the run sees type and message; the host's log keeps where
                reply = ("error", portable(exc))
            try:
                connection.send(reply)
            except OSError:  # the run is gone (cancelled): nobody to tell
                pass


def portable(exc: BaseException) -> BaseException:
    """`exc` when it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any class that does not round-trip
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def serve(address: str, authkey: bytes) -> None:
    """Answer model calls on the Unix socket `address` until SIGTERM."""
    _hosts[:] = [None]  # this process is the host: its own load_generator and prefetch work here
    # Ctrl-C reaches the service's whole process group; the service stops its host itself, after its runs
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # unwinds: the socket file is removed
    host = Host()
    with Listener(address, family="AF_UNIX", backlog=16, authkey=authkey) as listener:
        while True:
            try:
                connection = listener.accept()
            except (OSError, EOFError, AuthenticationError):  # a client that left mid-handshake, or a wrong key
                continue
            threading.Thread(target=host.answer_on, args=(connection,), daemon=True).start()


@dataclass
class RunningHost:
    """A host process this one started; `environment` is what its runs need to find it."""

    process: subprocess.Popen
    client: HostClient

    @property
    def environment(self) -> dict[str, str]:
        return {ADDRESS: self.client.address, KEY: self.client.key}

    def stop(self, grace_s: float = 10.0) -> None:
        self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """A new host at the same socket with the same key, after this one exited (killed for memory,
        crashed): the runs' environment names it as it named the old one. HostGone when it does not start."""
        self.stop()
        Path(self.client.address).unlink(missing_ok=True)  # a killed host leaves its socket file: no new Listener there
        self.process = _launch(self.client, timeout_s)


def _launch(client: HostClient, timeout_s: float) -> subprocess.Popen:
    """A host process listening at the client's address with its key, once it answers; HostGone when not."""
    environment = {**os.environ, KEY: client.key}
    environment.pop(ADDRESS, None)
    process = subprocess.Popen([sys.executable, "-m", MODULE, client.address], env=environment, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.call("ping")
            return process
        except HostGone as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                RunningHost(process, client).stop()
                raise HostGone(f"the model host did not start (exit code {process.returncode})") from exc
            time.sleep(0.05)


def start(address: str, timeout_s: float = START_TIMEOUT_S) -> RunningHost:
    """Start a host listening at `address` (a path in a private folder) with a fresh key, and return
    once it answers. It inherits this process's environment, so covermill's orphan guard
    (tasks/core/orphans.py) stops it should this process be killed; HostGone when it does not start."""
    client = HostClient(address, secrets.token_hex(32))
    return RunningHost(_launch(client, timeout_s), client)


def main() -> None:
    key = os.environ.pop(KEY, "")  # not passed on to the processes the host starts (the features worker)
    os.environ.pop(ADDRESS, None)
    if len(sys.argv) != 2 or not key:
        sys.exit(f"usage: {KEY}=<hex key> python -m {MODULE} SOCKET_PATH")
    serve(sys.argv[1], bytes.fromhex(key))


if __name__ == "__main__":
    # through the imported module, not this __main__ copy: models/generator.py asks that one about the host
    from covermill.models.host import main as host_main

    host_main()
