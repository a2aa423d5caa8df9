"""A SIGKILLed covermill command's helper processes are stopped by its guard, whether they stayed in
its process group or not; a command that ends normally leaves its guard nothing to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from covermill.tasks.core.host import process_alive
from covermill.tasks.core.orphans import TAG, tagged_processes

# A command as covermill's main() starts: guarded, then children of its own (one in its group, one
# in a session of its own, as nothing stops a child from doing), then it works until killed.
COMMAND = """
import subprocess, sys, time
from covermill.tasks.core.orphans import guard_this_command
guard = guard_this_command()
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
children = [subprocess.Popen(sleeper), subprocess.Popen(sleeper, start_new_session=True)]
print(guard.pid, *(c.pid for c in children), flush=True)
time.sleep(float(sys.argv[1]))
"""


@contextmanager
def running_command(seconds: float) -> Iterator[tuple[subprocess.Popen, int, list[int]]]:
    """(the command, its guard, its children); whatever of them a failed test left is killed after."""
    command = subprocess.Popen([sys.executable, "-c", COMMAND, str(seconds)], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    guard, *children = (int(pid) for pid in command.stdout.readline().split())
    try:
        yield command, guard, children
    finally:
        for pid in children:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def wait_gone(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(process_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if process_alive(p)]


def test_the_guard_stops_what_a_killed_command_left_running():
    with running_command(600) as (command, guard, children):
        environment = open(f"/proc/{children[0]}/environ", "rb").read().split(b"\0")
        tag = next(v.decode().split("=", 1)[1] for v in environment if v.startswith(f"{TAG}=".encode()))
        assert tag.endswith(f"~{command.pid}")
        assert sorted(tagged_processes(tag)) == sorted(children)  # the guard carries no tag
        assert process_alive(guard)
        os.kill(command.pid, signal.SIGKILL)  # the command alone, as the OOM killer does
        command.wait()
        assert wait_gone([*children, guard]) == []


def test_a_command_killed_with_its_group_leaves_nothing_either():
    with running_command(600) as (command, guard, children):
        os.killpg(command.pid, signal.SIGKILL)  # the guard lives in a session of its own and survives this
        command.wait()
        assert wait_gone([*children, guard]) == []


def test_a_command_that_ends_by_itself_takes_its_guard_along():
    with running_command(0.5) as (command, guard, children):
        assert command.wait(timeout=30) == 0
        assert wait_gone([guard, *children]) == []  # what it left running is stopped too
