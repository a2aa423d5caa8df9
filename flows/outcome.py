"""A finished flow run as its result or one sentence: the one place a failed state is told.

Flows are called with `return_state=True` wherever one failure must not stop the rest (each song
of a run or a night, the publishing pass after them). A CovermillError is bad input and already a
sentence; anything else is a bug or a broken machine, named by its type and message, with where
to find the traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.urls import without_queries

T = TypeVar("T")


def failure_sentence(error: object, what: str) -> str:
    """One sentence for what a failed run raised; `what` names the run (a source, "publishing").
    The ledger, the gallery and the logs show it, so URLs in it lose their queries."""
    if isinstance(error, CovermillError):
        return str(error)
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
