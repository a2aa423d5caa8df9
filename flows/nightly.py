"""nightly: every new song of a playlist through cover_song, then one publishing pass, best first.

The ledger's playlist archive decides what is new: an entry whose video was made (queued or
published) or whose candidates were all rejected is settled; a failed one is tried again on later
nights, up to `nightly.max_attempts`. Each song is its own cover_song subflow, so one song's
failure is recorded with its reason and the others go on. The night ends with a summary, returned
and kept as a Prefect markdown artifact.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from covermill.flows.config import CovermillConfig
from covermill.flows.cover_song import cover_song
from covermill.flows.publish import publish
from covermill.tasks.errors import CovermillError
from covermill.tasks.layout import ledger_path
from covermill.tasks.ledger import DONE, FAILED, REJECTED, Ledger
from covermill.tasks.playlist import Entry, NightlySettings, read_playlist
from covermill.tasks.rank import EveryCandidateRejected


def settled(ledger: Ledger, entry: Entry, settings: NightlySettings) -> str | None:
    """Why an entry is not processed tonight, or None when it should be."""
    found = ledger.entry(entry.source)
    if found is None:
        return None
    state, detail, attempts = found
    if state in (DONE, REJECTED):
        return state
    if state == FAILED and attempts >= settings.max_attempts:
        return f"failed {attempts} times, left alone: {detail}"
    return None


def _reason(exc: object) -> str:
    return str(exc) if isinstance(exc, CovermillError) else f"unexpected failure ({exc!r})"


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# covermill nightly: {summary['playlist']}", "",
             f"{len(summary['done'])} done, {len(summary['rejected'])} rejected, {len(summary['failed'])} failed, "
             f"{len(summary['settled'])} already settled, {len(summary['deferred'])} left for another night.", ""]
    for title, key in (("Done", "done"), ("Rejected", "rejected"), ("Failed", "failed"), ("Left for another night", "deferred")):
        if summary[key]:
            lines += [f"## {title}", ""] + [f"- {source}: {detail}" for source, detail in summary[key].items()] + [""]
    upload = summary.get("publish") or {}
    if upload.get("error"):
        lines += ["## Upload", "", f"not run: {upload['error']}", ""]
    elif upload:
        mode = "dry run" if upload.get("dry_run") else "published"
        lines += ["## Upload", "", f"{mode}: {len(upload.get('published', {}))} uploaded, "
                  f"{upload.get('waiting', 0) - len(upload.get('published', {}))} queued"
                  + (f", stopped: {upload['stopped']}" if upload.get("stopped") else ""), ""]
    return "\n".join(lines)


@flow(name="nightly", log_prints=True)
def nightly(playlist: str | None = None, out_dir: str = "out", config: CovermillConfig | None = None,
            dry_run: bool = True) -> dict[str, Any]:
    """Cover every new song of `playlist` (default: nightly.playlist), then publish today's share."""
    config = config or CovermillConfig()
    settings = config.nightly
    source = playlist or settings.playlist
    if not source:
        raise CovermillError("no playlist given; pass one or set nightly.playlist in config.yaml.")
    logger = get_run_logger()
    ledger = Ledger(ledger_path(Path(out_dir)))
    entries = read_playlist(source, config.download)

    summary: dict[str, Any] = {"playlist": source, "done": {}, "rejected": {}, "failed": {}, "settled": {}, "deferred": {}}
    todo = []
    for entry in entries:
        reason = settled(ledger, entry, settings)
        if reason is None:
            todo.append(entry)
        else:
            summary["settled"][entry.source] = reason
    for entry in todo[settings.max_songs:]:
        summary["deferred"][entry.source] = f"over nightly.max_songs ({settings.max_songs})"
    todo = todo[: settings.max_songs]
    logger.info("%s: %d entries, %d new tonight, %d settled", source, len(entries), len(todo), len(summary["settled"]))

    started = time.monotonic()
    for number, entry in enumerate(todo, 1):
        if time.monotonic() - started > settings.max_minutes * 60:
            summary["deferred"][entry.source] = f"over nightly.max_minutes ({settings.max_minutes:g})"
            continue
        logger.info("[%d/%d] %s", number, len(todo), entry.title or entry.source)
        state = cover_song(entry.source, out_dir, config, True, return_state=True)
        if state.is_completed():
            result = state.result()
            ledger.record_entry(entry.source, DONE, f"pick {result['pick']}", result["song_id"])
            summary["done"][entry.source] = f"{result['title']}: pick {result['pick']}"
            continue
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, EveryCandidateRejected):
            ledger.record_entry(entry.source, REJECTED, str(exc))
            summary["rejected"][entry.source] = str(exc)
        else:
            ledger.record_entry(entry.source, FAILED, _reason(exc))
            summary["failed"][entry.source] = _reason(exc)
        logger.warning("%s: %s", entry.source, _reason(exc))

    publishing = publish(out_dir, config, dry_run, return_state=True)
    summary["publish"] = publishing.result() if publishing.is_completed() else {"error": _reason(publishing.result(raise_on_failure=False))}
    create_markdown_artifact(summary_markdown(summary), key="nightly-summary", description=f"covermill nightly over {source}")
    return summary
