"""What a killed run leaves behind, named so the next run can tell it from another run's work, and removed.

A temporary file or folder is named after the host and the process that made it
(`leftover_tag()`): the next run removes the ones whose process no longer runs on this host, and
another host's once they are older than OTHER_HOST_AGE_S (a shared work folder: its process cannot
be asked). Two kinds: `.<name>.tmp-<tag>-<random>` files beside their targets (atomic writes,
core/atomic.py) and `covermill-<kind>-<tag>-<random>` folders under the system's temporary folder
(`scratch_folder`, e.g. the video's ranges).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from covermill.tasks.core.host import process_alive

OTHER_HOST_AGE_S = 6 * 3600.0  # as the ledger's publish claims: no write of covermill's lasts that long
TAGGED = re.compile(r"^(?:\.[^/]*\.tmp|covermill-[a-z-]+)-(?P<host>[A-Za-z0-9_.]+)~(?P<pid>\d+)-")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def leftover_tag() -> str:
    """`<host>~<pid>` of this process, for the names of its temporary files and folders."""
    return f"{_host()}~{os.getpid()}"


@contextmanager
def scratch_folder(kind: str) -> Iterator[Path]:
    """A temporary folder for this process's scratch files, removed after the block (or by the next
    run, should this one be killed)."""
    with tempfile.TemporaryDirectory(prefix=f"covermill-{kind}-{leftover_tag()}-") as folder:
        yield Path(folder)


def is_leftover(path: Path, now: float | None = None) -> bool:
    """Whether `path` is a tagged temporary whose process is gone (or another host's, and old)."""
    found = TAGGED.match(path.name)
    if found is None:
        return False
    if found["host"] == _host():
        return not process_alive(int(found["pid"]))
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    return age > OTHER_HOST_AGE_S


def remove_leftovers(*folders: Path) -> list[Path]:
    """Remove the leftovers under `folders` (recursively) and in the system's temporary folder; what was removed."""
    removed = []
    candidates = list(Path(tempfile.gettempdir()).glob("covermill-*"))
    for folder in folders:
        if Path(folder).is_dir():
            candidates += Path(folder).rglob(".*.tmp-*")
    for path in candidates:
        if is_leftover(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
