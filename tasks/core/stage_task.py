"""The one way a stage becomes a Prefect task: retried on flaky failures, never on bad input.

Skipping finished work is the ledger's and the song folder's job (atomic files), not Prefect's
result cache, so tasks neither cache nor persist results.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from covermill.tasks.core.errors import CovermillError


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(state.data, CovermillError)


def stage_task(name: str, retries: int = 2, retry_delay_seconds: float = 2.0):
    """Decorator turning a thin wrapper over a pure function into a retriable Prefect task."""
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=retry_delay_seconds,
        retry_condition_fn=_retry_unless_user_error,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


def stage_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run (its lines reach the UI), a plain logger outside one."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(f"covermill.{name}")
