"""A killed run's temporary files and folders are removed by the next run; a live run's, and
anything covermill did not name, are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.leftovers import OTHER_HOST_AGE_S, leftover_tag, remove_leftovers, scratch_folder

# A run killed in the middle of an atomic write and of a scratch folder's work.
KILLED = """
import sys, time
from pathlib import Path
from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.leftovers import scratch_folder
with scratch_folder("video") as scratch, atomic_output(Path(sys.argv[1])) as tmp:
    (scratch / "range-000.mp4").write_bytes(b"half")
    tmp.write_bytes(b"half a video")
    print(scratch, tmp, flush=True)
    time.sleep(600)
"""


def test_a_killed_runs_leftovers_go_and_a_live_runs_stay(tmp_path):
    song = tmp_path / "out" / "5eed5eed5eed5eed"
    song.mkdir(parents=True)
    killed = subprocess.Popen([sys.executable, "-c", KILLED, str(song / "video.mp4")], stdout=subprocess.PIPE, text=True)
    scratch, tmp = (Path(p) for p in killed.stdout.readline().split())
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert scratch.is_dir() and tmp.is_file()  # what SIGKILL leaves
    mine = song / "notes.txt"
    (song / ".mine.tmp-kept").write_text("not covermill's name")
    with scratch_folder("video") as live_scratch, atomic_output(mine) as live_tmp:
        live_tmp.write_text("in progress")
        removed = remove_leftovers(tmp_path / "out")
        assert set(removed) >= {scratch, tmp}
        assert not scratch.exists() and not tmp.exists()
        assert live_scratch.is_dir() and live_tmp.is_file()  # this process still runs
    assert (song / ".mine.tmp-kept").exists()
    assert not list(song.glob(".video.tmp-*"))


def test_another_hosts_leftovers_go_only_once_old(tmp_path):
    fresh = tmp_path / ".video.tmp-otherhost~123-abcd1234.mp4"
    stale = tmp_path / ".ranking.tmp-otherhost~456-abcd1234.json"
    for path in (fresh, stale):
        path.write_text("x")
    old = time.time() - OTHER_HOST_AGE_S - 60
    os.utime(stale, (old, old))
    removed = remove_leftovers(tmp_path)
    assert stale in removed and fresh not in removed
    assert fresh.exists() and not stale.exists()
    assert leftover_tag().endswith(f"~{os.getpid()}")
