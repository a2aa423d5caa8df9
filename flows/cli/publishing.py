"""`covermill auth`, `covermill queue` and `covermill publish`: YouTube, and the pass that publishes today's share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from covermill.flows.cli.common import (
    ConfigFile,
    Debug,
    WorkFolder,
    app,
    decide_dry_run,
    load_settings,
    one_sentence_on_error,
    plain,
    say_error,
    start_flow_logging,
    tell_failure,
)


def run_publish(out: Path, settings, dry_run: bool, debug: bool) -> bool:
    """Today's share of the queue; prints what happened. False when it failed as a whole or for a song."""
    from covermill.flows.outcome import outcome
    from covermill.flows.publish import publish

    found = outcome(publish(out_dir=str(out), config=settings, dry_run=dry_run, return_state=True), "publishing")
    if not found.ok:
        tell_failure(found, debug)
        return False
    summary = found.result  # a dry run's plan is the publish flow's own log line: told once
    for song_id, video_id in summary.published.items():
        print(f"published: {song_id} -> https://youtu.be/{video_id}")
    for song_id, reason in summary.failed.items():
        say_error(f"song {song_id} was not published: {reason}")
    if summary.stopped:
        print(f"YouTube stopped uploads for today ({summary.stopped}); the rest wait for tomorrow.")
    return not summary.failed


@app.command(
    help=(
        "Upload what today's YouTube budget allows from the work folder, best covers first, "
        "without making anything new. Uploads that died half way resume; a song already on "
        "YouTube is never uploaded again. With --dry-run (the default unless upload.enabled is "
        "true) only upload_request.json files are written.\n\n"
        "Examples:\n\n"
        "  covermill publish --out covers --publish\n\n"
        "  covermill publish --dry-run"
    )
)
def publish(
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the requests; send nothing.")] = False,
    publish_now: Annotated[bool, typer.Option("--publish", help="Upload even when upload.enabled is false.")] = False,
    debug: Debug = False,
) -> None:
    settings = load_settings(config)
    dry_run = decide_dry_run(dry_run, publish_now, settings)
    start_flow_logging(debug)
    if not run_publish(out, settings, dry_run, debug):
        raise typer.Exit(1)


@app.command(
    help=(
        "List the videos waiting to be published, best first, with their ranking scores, and "
        "what today's YouTube budget (Pacific-time day) still allows.\n\n"
        "Example:\n\n"
        "  covermill queue --out covers"
    )
)
def queue(
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
) -> None:
    from datetime import datetime, timezone

    from covermill.tasks.core.layout import ledger_path
    from covermill.tasks.core.ledger import Ledger
    from covermill.tasks.publish.queue import todays_budget, todays_slots, waiting

    settings = load_settings(config)
    if not ledger_path(out).exists():
        say_error(f"{out}: no ledger here; give the --out folder that `covermill run` used.")
        raise typer.Exit(2)
    ledger = Ledger(ledger_path(out))
    now = datetime.now(timezone.utc)
    songs = waiting(ledger, out)
    quota = settings.upload.quota
    budget = todays_budget(ledger, quota, now)
    slots = {s.song.song_id: s for s in todays_slots(songs, budget, quota, now, settings.upload.schedule)}
    print(f"quota day {budget.day} (Pacific): {budget.uploaded} published, calls so far {budget.calls or 'none'}")
    if budget.stopped:
        print(f"YouTube stopped uploads for today ({budget.stopped}); nothing more until tomorrow.")
    print(f"today's budget allows {budget.allowed} more (channel cap {quota.uploads_per_day} a day, {quota.model} quota model)")
    if not songs:
        print("nothing waits: every finished video is published.")
        return
    print(f"{len(songs)} waiting, best first (lower score is better):")
    for number, song in enumerate(songs, 1):
        slot = slots.get(song.song_id)
        when = "today" + (f" at {slot.publish_at:%Y-%m-%d %H:%M %Z}" if slot and slot.publish_at else "") if slot else "later"
        state = " (on YouTube, finishing)" if song.on_youtube else ""
        print(f"{number:3d}. {song.combined:7.3f}  Qmax {song.qmax:6.3f}  {when:28s} {plain(song.title)}{state}  [{song.song_id}]")


@app.command(
    help=(
        "Authorize covermill to upload to your YouTube channel (OAuth, installed-app flow on a "
        "loopback redirect). Needs the OAuth client file of a Desktop app from Google Cloud "
        "console (upload.auth.client_secrets). The token is kept, mode 0600, in the work folder.\n\n"
        "Without a browser on this machine, --headless prints the URL to open elsewhere; after "
        "consent that browser fails to load a 127.0.0.1 address: paste that address back here. "
        "--token-file imports a token made by `covermill auth` on another machine.\n\n"
        "Examples:\n\n"
        "  covermill auth --out covers\n\n"
        "  covermill auth --out covers --headless\n\n"
        "  covermill auth --out covers --token-file youtube-token.json"
    )
)
def auth(
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
    headless: Annotated[bool, typer.Option("--headless", help="No browser here: print the URL and read the pasted redirect address.")] = False,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="Import a token file made elsewhere instead.", show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", help="Loopback port for the redirect (0: any free port; headless default 8080).")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser; print the URL to open.")] = False,
) -> None:
    from covermill.tasks.publish.authorize import authorize
    from covermill.tasks.publish.token_store import import_token

    settings = load_settings(config)
    with one_sentence_on_error():
        if token_file is not None:
            saved = import_token(token_file, settings.upload.auth, out)
            print(f"imported: the token is in {saved} (mode 0600).")
        else:
            authorize(settings.upload.auth, out, headless=headless, open_browser=not no_browser, port=port)


@app.command(
    help=(
        "Let a song into the publishing queue that covermill held back: its pick was not nearer to "
        "its own original than to other songs of the work folder (the recognisability gate; the "
        "review page says why). Listen first: the song's review.html has its players. Publishing "
        "then goes as usual, best first, a few a day.\n\n"
        "Example:\n\n"
        "  covermill approve 3f2a9c1b0d4e --out covers"
    )
)
def approve(
    song_id: Annotated[str, typer.Argument(help="The song's id: its folder's name under --out.", show_default=False)],
    out: WorkFolder = Path("out"),
) -> None:
    from covermill.tasks.core.fingerprints import Fingerprints, stage_output
    from covermill.tasks.core.layout import SongFolder, ledger_path
    from covermill.tasks.core.ledger import APPROVAL_STAGE, IDENTITY_STAGE, Ledger, State

    if not ledger_path(out).exists():
        say_error(f"{out}: no ledger here; give the --out folder that `covermill run` used.")
        raise typer.Exit(2)
    ledger = Ledger(ledger_path(out))
    song = ledger.song(song_id)
    if song is None:
        say_error(f"{song_id}: no such song in {out}; the ids are the song folders' names (`covermill queue` lists the waiting ones).")
        raise typer.Exit(2)
    held = ledger.stage_state(song_id, IDENTITY_STAGE)
    fingerprints = Fingerprints(ledger, SongFolder(out, song_id))  # the approval holds for this pick only
    fingerprints.record(stage_output(APPROVAL_STAGE), fingerprints.recorded(stage_output("winner")) or "")
    ledger.mark(song_id, APPROVAL_STAGE, State.DONE, "approved from the command line")
    why = f" (it was held back: {held[1]})" if held and held[0] == State.HELD else ""
    print(f"approved: {song.title!r} may be published{why}; `covermill queue` shows its place.")
