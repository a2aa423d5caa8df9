"""Prefect settings that keep a run offline and quiet; applied before Prefect is imported."""

from __future__ import annotations

import logging
import os
import sys

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    # the 20 s default timed out once under load on these machines (shared/prefect-notes.md)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def apply_offline_defaults() -> None:
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)


class _HideFailures(logging.Filter):
    """Failures are told by the CLI in one sentence on stderr; Prefect's own error records would repeat them with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class _CurrentStdout:
    """Whatever sys.stdout is when a record is written (tests swap it; a stale one may be closed)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def route_prefect_console(debug: bool) -> None:
    """Prefect's run log is progress: send it to stdout, and keep its failure records for --debug."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            # not setStream: it flushes the old stream, which may be a closed one (a handler made
            # while a test's captured stderr was current)
            with handler.lock:
                handler.stream = _CurrentStdout()
            handler.console.file = None  # rich then follows whatever sys.stdout is at print time
            for old in [f for f in handler.filters if isinstance(f, _HideFailures)]:
                handler.removeFilter(old)
            if not debug:
                handler.addFilter(_HideFailures())
