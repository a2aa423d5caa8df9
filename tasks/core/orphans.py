"""A command's helper processes never outlive it: they are tagged, and a guard stops them once it is gone.

A covermill command starts processes of its own: Prefect's temporary server when no server is
configured (~200 MB, started by Prefect as a plain child), the falling-notes render workers, the
ranking's process pool, FFmpeg. When the command is SIGKILLed (the OOM killer, `kill -9`), they
are re-parented and go on: measured by bench/chaos.py, a temporary Prefect server stayed up for
good after each such kill, and the ranking's spawned pool workers too. Nothing inside the dead
command can stop them, so `guard_this_command()` tags the command's environment with
`COVERMILL_COMMAND=<host>~<pid>` (every child inherits it) and starts a small guard in a session of
its own (so a kill of the command's process group spares it): it waits for the command to end, for
any reason, then stops every process still carrying the tag (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from covermill.tasks.core.host import process_alive
from covermill.tasks.core.leftovers import leftover_tag

TAG = "COVERMILL_COMMAND"  # environment variable: <host>~<pid> of the covermill command a process descends from
MODULE = "covermill.tasks.core.orphans"
GRACE_S = 5.0  # SIGTERM, then SIGKILL after this (Prefect's own stop of its server waits 5 s too)


def tagged_processes(tag: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of this user's processes whose environment carries `TAG=tag` (this process excluded)."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        if needle in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_processes(pids: list[int], grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM each, SIGKILL what still runs after `grace_s`; the pids that had to be killed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
        time.sleep(0.1)
    killed = [pid for pid in pids if process_alive(pid)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return killed


def wait_for_exit(pid: int) -> None:
    """Return once process `pid` has ended (a pidfd where the kernel has them, else polling)."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd here: poll
        while process_alive(pid):
            time.sleep(0.5)
        return
    try:
        select.select([handle], [], [])  # readable once the process has exited
    finally:
        os.close(handle)


def guard(pid: int, tag: str) -> None:
    """Wait for command `pid` to end, then stop what it left running."""
    wait_for_exit(pid)
    stop_processes(tagged_processes(tag))


def guard_this_command() -> subprocess.Popen | None:
    """Tag this command's environment and start its guard; None when it cannot (no /proc)."""
    if not Path(f"/proc/{os.getpid()}/environ").exists():
        return None
    tag = leftover_tag()
    os.environ[TAG] = tag  # before any child starts: they inherit it
    environment = {name: value for name, value in os.environ.items() if name != TAG}  # the guard is not one of them
    return subprocess.Popen([sys.executable, "-m", MODULE, str(os.getpid()), tag], env=environment,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


if __name__ == "__main__":
    guard(int(sys.argv[1]), sys.argv[2])
