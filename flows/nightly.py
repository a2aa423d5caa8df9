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
from covermill.flows.review import refresh_gallery
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import ledger_path
from covermill.tasks.core.ledger import DONE, FAILED, REJECTED, Ledger
from covermill.tasks.cover.playlist import Entry, NightlySettings, read_playlist
from covermill.tasks.rank.ranking import EveryCandidateRejected

SONG_DEPLOYMENT_NAME = "covermill-song/cover-song"  # flows/deployments.py makes it; fan-out runs it


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


def outcome_from_ledger(ledger: Ledger, source: str) -> tuple[str, str, str]:
    """(state, detail, song id) of a song a worker ran, read from the shared ledger."""
    song = next((s for s in reversed(ledger.songs()) if s.source == source), None)
    if song is None:
        return FAILED, "", ""
    winner = ledger.stage(song.id, "winner")
    if winner is not None and winner[0] == FAILED:
        return REJECTED, f"{source}: every candidate was rejected by the ranking", song.id
    if ledger.is_done(song.id, "video"):
        ranking = ledger.ranking(song.id)
        return DONE, f"{song.title}: pick {ranking.pick if ranking else '?'}", song.id
    return FAILED, "", song.id


def cover_here(entry: Entry, out_dir: str, config: CovermillConfig) -> tuple[str, str, str]:
    """One song as a subflow of this run: (state, detail, song id)."""
    state = cover_song(entry.source, out_dir, config, True, return_state=True)
    if state.is_completed():
        result = state.result()
        return DONE, f"{result['title']}: pick {result['pick']}", result["song_id"]
    exc = state.result(raise_on_failure=False)
    return (REJECTED if isinstance(exc, EveryCandidateRejected) else FAILED), _reason(exc), ""


def cover_on_workers(entries: list[Entry], out_dir: str, config_file: str | None, deadline: float,
                     ledger: Ledger) -> dict[str, tuple[str, str, str]]:
    """Each song as its own run of the cover-song deployment, for the work pool's workers to share;
    waits for them (until `deadline`, a monotonic time). The ledger and `out_dir` must be storage
    every worker sees: the outcomes are read back from there."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runs = {}
    for entry in entries:
        parameters = {"source": entry.source, "dry_run": True, "out_dir": str(Path(out_dir).resolve()),
                      "config_file": str(Path(config_file).resolve()) if config_file else ""}
        runs[entry.source] = run_deployment(SONG_DEPLOYMENT_NAME, parameters=parameters, timeout=0).id
    outcomes: dict[str, tuple[str, str, str]] = {}
    with get_client(sync_client=True) as client:
        while len(outcomes) < len(runs) and time.monotonic() < deadline:
            for source, run_id in runs.items():
                if source in outcomes:
                    continue
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    found = outcome_from_ledger(ledger, source)
                    detail = found[1] or (state.message or state.name)
                    outcomes[source] = (found[0] if state.is_completed() or found[0] != DONE else FAILED, detail, found[2])
            time.sleep(2)
    return outcomes


@flow(name="nightly", log_prints=True)
def nightly(playlist: str | None = None, out_dir: str = "out", config: CovermillConfig | None = None,
            dry_run: bool = True, config_file: str | None = None) -> dict[str, Any]:
    """Cover every new song of `playlist` (default: nightly.playlist), then publish today's share.

    With nightly.fan_out each song is a run of the cover-song deployment that the work pool's
    workers pick up; they read `config_file` (the same settings, on storage they share)."""
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

    deadline = time.monotonic() + settings.max_minutes * 60
    if settings.fan_out:
        outcomes = cover_on_workers(todo, out_dir, config_file, deadline, ledger)
        for entry in todo:
            if entry.source not in outcomes:
                summary["deferred"][entry.source] = f"still running on a worker after nightly.max_minutes ({settings.max_minutes:g})"
    else:
        outcomes = {}
        for number, entry in enumerate(todo, 1):
            if time.monotonic() > deadline:
                summary["deferred"][entry.source] = f"over nightly.max_minutes ({settings.max_minutes:g})"
                continue
            logger.info("[%d/%d] %s", number, len(todo), entry.title or entry.source)
            outcomes[entry.source] = cover_here(entry, out_dir, config)
    for entry_source, (state, detail, song_id) in outcomes.items():
        ledger.record_entry(entry_source, state, detail, song_id)
        summary[{DONE: "done", REJECTED: "rejected", FAILED: "failed"}[state]][entry_source] = detail
        if state != DONE:
            logger.warning("%s: %s", entry_source, detail)

    publishing = publish(out_dir, config, dry_run, return_state=True)
    summary["publish"] = publishing.result() if publishing.is_completed() else {"error": _reason(publishing.result(raise_on_failure=False))}
    refresh_gallery(Path(out_dir), config)
    create_markdown_artifact(summary_markdown(summary), key="nightly-summary", description=f"covermill nightly over {source}")
    return summary
