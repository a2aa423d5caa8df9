"""On Prefect's temporary servers a killed holder's `gpu` slot is given back by the next holder: the
marks tell a dead holder (its process gone from this host) from a live one or another host's."""

from __future__ import annotations

import subprocess
import sys

from covermill.tasks.core.gpu_slot import HolderMarks
from covermill.tasks.core.leftovers import leftover_tag


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_the_marks_of_holders_gone_from_this_host_are_taken(tmp_path):
    marks = HolderMarks(tmp_path / "gpu")
    live = marks.add()  # this process
    host = leftover_tag().split("~")[0]
    dead = [marks.folder / f"covermill-slot-{host}~{dead_pid()}-0000000{n}" for n in (1, 2)]
    elsewhere = marks.folder / f"covermill-slot-otherhost~{dead_pid()}-00000003"
    for mark in (*dead, elsewhere):
        mark.touch()
    (marks.folder / "notes.txt").touch()

    held = marks.take_dead()
    assert len(held) == 2 and all(seconds > 0 for seconds in held)  # one slot to give back each
    assert sorted(p.name for p in marks.folder.iterdir()) == sorted([live.name, elsewhere.name, "notes.txt"])
    assert marks.take_dead() == []  # taken once: a second run finds nothing to give back


def test_no_marks_yet_is_nothing_to_give_back(tmp_path):
    assert HolderMarks(tmp_path / "never-made").take_dead() == []
