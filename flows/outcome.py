"""A finished flow run as its result or one sentence: the one place a failed state is told.

Flows are called with `return_state=True` wherever one failure must not stop the rest (each song
of a run or a night, the publishing pass after them). A CovermillError is bad input and already a
sentence; a write the disk refused (full, a quota, a file size limit) is told as such, whichever
stage made it; anything else is a bug or a broken machine, named by its type and message, with
where to find the traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from covermill.tasks.core.errors import CovermillError, DiskFull
from covermill.tasks.core.urls import without_queries

T = TypeVar("T")

# what a write returns when the disk (or a quota, or the process's file size limit) has no room
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_full(error: object, what: str) -> DiskFull | None:
    """The DiskFull sentence for a write the disk refused, from Python's own file writes (an OSError
    naming the file, or a copy naming its target second: told by its folder, as a temporary file's
    name means nothing to a user) or SQLite's (the ledger); else None."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        written = error.filename2 or error.filename
        where = Path(os.fsdecode(written)).parent if isinstance(written, (str, bytes, os.PathLike)) else "the work folder"
        return DiskFull(what, where, error.strerror or "disk full")
    if isinstance(error, sqlite3.OperationalError) and "disk is full" in str(error):
        return DiskFull(what, "the ledger", str(error))
    return None


def failure_sentence(error: object, what: str) -> str:
    """One sentence for what a failed run raised; `what` names the run (a source, "publishing").
    The ledger, the gallery and the logs show it, so URLs in it lose their queries."""
    if isinstance(error, CovermillError):
        return str(error)
    if full := disk_full(error, what):
        return str(full)
    text = without_queries(repr(error))
    return f"{what}: unexpected failure ({text}); the traceback is in the run's log (or run again with --debug)."


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A run's result when it completed, else what it raised and the sentence that tells it."""

    result: T | None = None
    error: BaseException | None = None
    sentence: str | None = None

    @property
    def ok(self) -> bool:
        return self.sentence is None


def outcome(state: Any, what: str) -> Outcome[Any]:
    """The Outcome of a Prefect state returned by `flow(..., return_state=True)`."""
    if state.is_completed():
        return Outcome(result=state.result())
    error = state.result(raise_on_failure=False)
    return Outcome(error=error if isinstance(error, BaseException) else None, sentence=failure_sentence(error, what))
