"""nightly: every new song of a playlist through cover_song, then one publishing pass, best first.

The ledger's playlist archive decides what is new: an entry whose video was made (queued or
published) or whose candidates were all rejected is settled; a failed one is tried again on later
nights, up to `nightly.max_attempts`. Each song is its own cover_song subflow, so one song's
failure is recorded with its reason and the others go on. The night ends with a summary, returned
and kept as a Prefect markdown artifact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from covermill.flows.config import CovermillConfig
from covermill.flows.cover_song import cover_song
from covermill.flows.nightly_settings import NightlySettings
from covermill.flows.outcome import outcome
from covermill.flows.publish import publish
from covermill.flows.review import refresh_gallery
from covermill.flows.run_form import checked_source
from covermill.tasks.core.errors import CovermillError, EveryCandidateRejected
from covermill.tasks.core.layout import ledger_path
from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.leftovers import remove_leftovers
from covermill.tasks.core.records import NightlyResult
from covermill.tasks.core.run_artifacts import markdown_text
from covermill.tasks.cover.ahead import SongAhead
from covermill.tasks.cover.playlist import Entry, read_playlist

SONG_DEPLOYMENT_NAME = "covermill-song/cover-song"  # flows/deployments.py makes it; fan-out runs it


DIED_DURING = "the run stopped while covering it (killed, out of memory, or the machine went down)"


def settled(ledger: Ledger, entry: Entry, settings: NightlySettings) -> str | None:
    """Why an entry is not processed tonight, or None when it should be. An entry a nightly left
    `running` was being covered when that run died: it counts as a failed attempt, so that a song
    which kills the process every night is left alone after nightly.max_attempts (and does not
    keep the songs after it from running)."""
    found = ledger.entry(entry.source)
    if found is None:
        return None
    if found[0] == State.RUNNING:
        ledger.record_entry(entry.source, State.FAILED, DIED_DURING)
        found = ledger.entry(entry.source)
    state, detail, attempts = found
    if state in (State.DONE, State.REJECTED):
        return state.value
    if state == State.FAILED and attempts >= settings.max_attempts:
        return f"failed {attempts} times, left alone: {detail}"
    return None


def summary_markdown(summary: NightlyResult, text: Callable[[object], str] = markdown_text) -> str:
    """The night in Markdown; `text` renders what came from outside (titles, addresses, reasons):
    escaped for the Prefect UI by default, `str` for a terminal."""
    lines = [f"# covermill nightly: {text(summary.playlist)}", "",
             f"{len(summary.done)} done, {len(summary.rejected)} rejected, {len(summary.failed)} failed, "
             f"{len(summary.settled)} already settled, {len(summary.deferred)} left for another night.", ""]
    for title, entries in (("Done", summary.done), ("Rejected", summary.rejected), ("Failed", summary.failed),
                           ("Left for another night", summary.deferred)):
        if entries:
            lines += [f"## {title}", ""] + [f"- {text(source)}: {text(detail)}" for source, detail in entries.items()] + [""]
    if summary.publish_error:
        lines += ["## Upload", "", f"not run: {text(summary.publish_error)}", ""]
    elif summary.publish is not None:
        upload = summary.publish
        mode = "dry run" if upload.dry_run else "published"
        lines += ["## Upload", "", f"{mode}: {len(upload.published)} uploaded, {upload.waiting - len(upload.published)} queued"
                  + (f", stopped: {text(upload.stopped)}" if upload.stopped else ""), ""]
    return "\n".join(lines)


def outcome_from_ledger(ledger: Ledger, source: str) -> tuple[State, str, str]:
    """(state, detail, song id) of a song a worker ran, read from the shared ledger."""
    song = next((s for s in reversed(ledger.songs()) if s.source == source), None)
    if song is None:
        return State.FAILED, "", ""
    winner = ledger.stage_state(song.id, "winner")
    if winner is not None and winner[0] == State.FAILED:
        return State.REJECTED, f"{source}: every candidate was rejected by the ranking", song.id
    if ledger.is_done(song.id, "video"):
        ranking = ledger.ranking(song.id)
        return State.DONE, f"{song.title}: pick {ranking.pick if ranking else '?'}", song.id
    return State.FAILED, "", song.id


def cover_here(entry: Entry, out_dir: str, config: CovermillConfig) -> tuple[State, str, str]:
    """One song as a subflow of this run: (state, detail, song id)."""
    found = outcome(cover_song(source=entry.source, out_dir=out_dir, config=config, dry_run=True, publish_queue=False, return_state=True), entry.source)
    if found.ok:
        return State.DONE, f"{found.result.title}: pick {found.result.pick}", found.result.song_id
    return (State.REJECTED if isinstance(found.error, EveryCandidateRejected) else State.FAILED), found.sentence, ""


def cover_on_workers(entries: list[Entry], out_dir: str, config_file: str | None, deadline: float,
                     ledger: Ledger) -> dict[str, tuple[State, str, str]]:
    """Each song as its own run of the cover-song deployment, for the work pool's workers to share;
    waits for them (until `deadline`, a monotonic time). The ledger and `out_dir` must be storage
    every worker sees: the outcomes are read back from there."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runs = {}
    for entry in entries:
        parameters = {"source": entry.source, "dry_run": True, "publish_queue": False, "out_dir": str(Path(out_dir).resolve()),
                      "config_file": str(Path(config_file).resolve()) if config_file else ""}
        runs[entry.source] = run_deployment(SONG_DEPLOYMENT_NAME, parameters=parameters, timeout=0).id
    outcomes: dict[str, tuple[State, str, str]] = {}
    with get_client(sync_client=True) as client:
        while len(outcomes) < len(runs) and time.monotonic() < deadline:
            for source, run_id in runs.items():
                if source in outcomes:
                    continue
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    found = outcome_from_ledger(ledger, source)
                    detail = found[1] or (state.message or state.name)
                    outcomes[source] = (found[0] if state.is_completed() or found[0] != State.DONE else State.FAILED, detail, found[2])
            time.sleep(2)
    return outcomes


@flow(name="nightly", log_prints=True)
def nightly(playlist: str | None = None, out_dir: str = "out", config: CovermillConfig | None = None,
            dry_run: bool = True, config_file: str | None = None, entry_folders: list[Path] | None = None) -> NightlyResult:
    """Cover every new song of `playlist` (default: nightly.playlist), then publish today's share.

    With nightly.fan_out each song is a run of the cover-song deployment that the work pool's
    workers pick up; they read `config_file` (the same settings, on storage they share).
    `entry_folders`: the folders local entries must lie in (a playlist named by a run from the
    Prefect API: a list file inside the allowed folders may name files outside them)."""
    config = config or CovermillConfig()
    settings = config.nightly
    source = playlist or settings.playlist
    if not source:
        raise CovermillError("no playlist given; pass one or set nightly.playlist in config.yaml.")
    logger = get_run_logger()
    ledger = Ledger(ledger_path(Path(out_dir)))
    removed = remove_leftovers(Path(out_dir))
    if removed:
        logger.info("removed %d temporary files a killed run left behind", len(removed))
    entries = read_playlist(source, config.download)

    outcome_lists: dict[State, dict[str, str]] = {State.DONE: {}, State.REJECTED: {}, State.FAILED: {}}
    settled_entries: dict[str, str] = {}
    deferred: dict[str, str] = {}
    todo = []
    for entry in entries:
        reason = settled(ledger, entry, settings)
        if reason is None:
            todo.append(entry)
        else:
            settled_entries[entry.source] = reason
    refused: dict[str, tuple[State, str, str]] = {}
    for entry in list(todo) if entry_folders is not None else []:
        try:
            checked_source(entry.source, entry_folders, config_file or "config.yaml")
        except CovermillError as exc:
            todo.remove(entry)
            refused[entry.source] = (State.FAILED, str(exc), "")
            ledger.record_entry(entry.source, *refused[entry.source])
    for entry in todo[settings.max_songs:]:
        deferred[entry.source] = f"over nightly.max_songs ({settings.max_songs})"
    todo = todo[: settings.max_songs]
    logger.info("%s: %d entries, %d new tonight, %d settled", source, len(entries), len(todo), len(settled_entries))

    deadline = time.monotonic() + settings.max_minutes * 60
    if settings.fan_out:
        outcomes = cover_on_workers(todo, out_dir, config_file, deadline, ledger)
        for entry in todo:
            if entry.source not in outcomes:
                deferred[entry.source] = f"still running on a worker after nightly.max_minutes ({settings.max_minutes:g})"
    else:
        outcomes = {}
        # the next song is downloaded and its cover models' CPU work started while this one runs
        ahead = SongAhead(Path(out_dir), config.download, config.generate)
        for number, entry in enumerate(todo, 1):
            if time.monotonic() > deadline:
                deferred[entry.source] = f"over nightly.max_minutes ({settings.max_minutes:g})"
                continue
            logger.info("[%d/%d] %r", number, len(todo), entry.title or entry.source)
            if ahead.source == entry.source and ahead.wait():
                logger.info("downloaded, and its %s work begun, while the previous song ran", " and ".join(ahead.asked))
            if number < len(todo):
                ahead.start(todo[number].source)
            ledger.record_entry(entry.source, State.RUNNING, "being covered")
            outcomes[entry.source] = cover_here(entry, out_dir, config)
            ledger.record_entry(entry.source, *outcomes[entry.source])  # now: a kill later loses nothing
        ahead.wait()
    outcomes = {**refused, **outcomes}
    for entry_source, (state, detail, song_id) in outcomes.items():
        if settings.fan_out:
            ledger.record_entry(entry_source, state, detail, song_id)
        outcome_lists[state][entry_source] = detail
        if state != State.DONE:
            logger.warning("%s: %s", entry_source, detail)

    publishing = outcome(publish(out_dir=out_dir, config=config, dry_run=dry_run, return_state=True), "publishing")
    summary = NightlyResult(playlist=source, done=outcome_lists[State.DONE], rejected=outcome_lists[State.REJECTED],
                            failed=outcome_lists[State.FAILED], settled=settled_entries, deferred=deferred,
                            publish=publishing.result, publish_error=publishing.sentence)
    refresh_gallery(Path(out_dir), config)
    create_markdown_artifact(summary_markdown(summary), key="nightly-summary", description=f"covermill nightly over {markdown_text(source)}")
    return summary
