"""The one way a stage becomes a Prefect task: retried on flaky failures, never on bad input.

Skipping finished work is the ledger's and the song folder's job (atomic files), not Prefect's
result cache, so tasks neither cache nor persist results.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from covermill.tasks.errors import CovermillError


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(state.data, CovermillError)


def stage(name: str, retries: int = 2, retry_delay_seconds: float = 2.0):
    """Decorator turning a thin wrapper over a pure function into a retriable Prefect task."""
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=retry_delay_seconds,
        retry_condition_fn=_retry_unless_user_error,
        cache_policy=NO_CACHE,
        persist_result=False,
    )
