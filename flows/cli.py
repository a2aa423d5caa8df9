"""The `covermill` command: run songs through the cover_song flow, and check the machine."""

from __future__ import annotations

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()  # before anything imports Prefect

import sys  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402

app = typer.Typer(
    help=(
        "covermill turns songs into ranked AI piano covers, YouTube-ready videos, and (once you turn publishing on) YouTube uploads, best first, a few a day.\n\n"
        "Examples:\n\n"
        "  covermill run song.mp3 --dry-run\n\n"
        "  covermill run ~/Music/album/ --out covers --dry-run\n\n"
        "  covermill run https://www.youtube.com/watch?v=VIDEO_ID --config config.yaml\n\n"
        "  covermill auth --headless\n\n"
        "  covermill nightly songs.txt --out covers\n\n"
        "  covermill serve --out covers\n\n"
        "  covermill deploy --pool covermill --out /shared/covers\n\n"
        "  covermill queue\n\n"
        "  covermill publish\n\n"
        "  covermill doctor"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


WorkFolder = Annotated[Path, typer.Option("--out", "-o", help="Work folder: a sub-folder per song, the ledger, the YouTube token.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (default: ./config.yaml if present, else built-in defaults).")]


def _say_error(message: str) -> None:
    print(f"covermill: {message}", file=sys.stderr)


@app.command(
    help=(
        "Make piano covers of SOURCE(s): audio files, folders of audio files, or http(s) URLs.\n\n"
        "Each song gets a folder under --out (named by a stable id) holding the original audio, "
        "the candidate MIDIs and their renders, ranking.json, winner.mid, thumbnail.jpg and "
        "video.mp4. Running the same source again skips finished stages. One bad source is "
        "reported and the others go on; the exit code is 1 if any failed.\n\n"
        "Then the publishing queue runs: a dry run (the default until upload.enabled is true) "
        "writes upload_request.json beside each waiting video, the exact request it would send; "
        "--publish uploads what today's YouTube budget allows, best covers first.\n\n"
        "Examples:\n\n"
        "  covermill run song.ogg --dry-run\n\n"
        "  covermill run a.mp3 b.flac https://example.com/c.ogg --out covers --dry-run\n\n"
        "  covermill run ~/Music/album/ --config my-config.yaml --dry-run\n\n"
        "  covermill run song.ogg --generators basic-pitch,pop2piano --arrangers 1,3,20 --seeds 0,1 --dry-run\n\n"
        "  covermill run ~/Music/album/ --out covers --publish"
    )
)
def run(
    sources: Annotated[list[str], typer.Argument(help="Audio files, folders of audio files, or http(s) URLs.", show_default=False)],
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Stop at the local video and its upload_request.json; never upload (the default unless upload.enabled is true).")] = False,
    publish: Annotated[bool, typer.Option("--publish", help="Upload what today's YouTube budget allows (as upload.enabled: true does).")] = False,
    generators: Annotated[Optional[str], typer.Option("--generators", "-g", help="Generators to run, comma-separated (overrides config), e.g. basic-pitch,pop2piano.", show_default=False)] = None,
    arrangers: Annotated[Optional[str], typer.Option("--arrangers", "-a", help="Pop2Piano arrangers: 'all' or composer numbers 1-21 such as 1,3,20 (the -c of the pop2piano CLI fork).", show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Sampling seeds, comma-separated, for Pop2Piano and the random arrangement styles, e.g. 0,1,2.", show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and Prefect's error records.")] = False,
) -> None:
    from covermill.flows.config import load_config, with_overrides
    from covermill.tasks.cover.download import expand_sources
    from covermill.tasks.core.errors import CovermillError

    try:
        settings = with_overrides(load_config(config), generators, arrangers, seeds)
        songs = expand_sources(sources)
    except CovermillError as exc:
        if debug:
            traceback.print_exc()
        _say_error(str(exc))
        raise typer.Exit(2) from None
    dry_run = _dry_run(dry_run, publish, settings)

    from covermill.flows.cover_song import cover_song
    from covermill.flows.offline import route_prefect_console
    from covermill.tasks.core.layout import SongFolder, gallery_index

    route_prefect_console(debug)
    failed = 0
    for number, source in enumerate(songs, 1):
        print(f"[{number}/{len(songs)}] {source}", flush=True)
        # every song first, then one publishing pass: best first across all of them
        state = cover_song(source, str(out), settings, True, return_state=True)
        if state.is_completed():
            result = state.result()
            print(
                f"done: {result['title']!r} -> {result['folder']}\n"
                f"  video:   {result['video']}\n"
                f"  MIDI:    {result['winner_midi']} (pick: {result['pick']} of {result['candidates']} candidates)\n"
                f"  ranking: {result['ranking']}\n"
                f"  review:  {SongFolder(out, result['song_id']).review_page} (all songs: {gallery_index(out)})",
                flush=True,
            )
            continue
        failed += 1
        exc = state.result(raise_on_failure=False)
        if debug and isinstance(exc, BaseException):
            traceback.print_exception(exc)
        if isinstance(exc, CovermillError):
            _say_error(str(exc))
        else:
            _say_error(f"{source}: unexpected failure ({exc!r}); run again with --debug for the traceback.")
    if len(songs) > 1:
        print(f"{len(songs) - failed} of {len(songs)} songs done, {failed} failed.")
    if not _run_publish(out, settings, dry_run, debug) or failed:
        raise typer.Exit(1)


@app.command(
    help=(
        "Cover every new song of a PLAYLIST, then publish today's share, best first: what the "
        "nightly schedule runs. A playlist is a playlist URL yt-dlp reads (YouTube, an RSS feed, "
        "...), a folder of audio files, or a text file with one URL or path per line. Songs "
        "already done or rejected in the work folder's ledger are skipped; one song's failure is "
        "recorded with its reason and the others go on. Limits per night: nightly.max_songs, "
        "nightly.max_minutes.\n\n"
        "Examples:\n\n"
        "  covermill nightly 'https://www.youtube.com/playlist?list=PL...' --out covers\n\n"
        "  covermill nightly ~/Music/to-cover/ --out covers --publish\n\n"
        "  covermill nightly songs.txt --max-songs 3 --dry-run"
    )
)
def nightly(
    playlist: Annotated[Optional[str], typer.Argument(help="Playlist URL, folder, or text file (default: nightly.playlist).", show_default=False)] = None,
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Never upload (the default unless upload.enabled is true).")] = False,
    publish: Annotated[bool, typer.Option("--publish", help="Upload what today's YouTube budget allows.")] = False,
    max_songs: Annotated[Optional[int], typer.Option("--max-songs", min=1, help="New songs tonight (overrides nightly.max_songs).", show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and Prefect's error records.")] = False,
) -> None:
    from covermill.flows.config import config_from_dict
    from covermill.flows.nightly import nightly as nightly_flow
    from covermill.flows.offline import route_prefect_console
    from covermill.tasks.core.errors import CovermillError

    settings = _load_settings(config)
    dry_run = _dry_run(dry_run, publish, settings)
    if max_songs is not None:
        data = settings.model_dump(mode="json")
        data["nightly"]["max_songs"] = max_songs
        settings = config_from_dict(data, "command line")
    route_prefect_console(debug)
    state = nightly_flow(playlist, str(out), settings, dry_run, return_state=True)
    if not state.is_completed():
        exc = state.result(raise_on_failure=False)
        if debug and isinstance(exc, BaseException):
            traceback.print_exception(exc)
        _say_error(str(exc) if isinstance(exc, CovermillError) else f"the nightly run failed ({exc!r}); run again with --debug for the traceback.")
        raise typer.Exit(1)
    summary = state.result()
    from covermill.flows.nightly import summary_markdown

    print(summary_markdown(summary))
    if summary["failed"] or (summary.get("publish") or {}).get("error"):
        raise typer.Exit(1)


@app.command(
    help=(
        "Serve covermill's two Prefect deployments from this process until stopped: "
        "'covermill-song/cover-song' (one song, started by hand from the Prefect UI with a form: "
        "source, dry run, generators, arrangers, seeds) and 'covermill-nightly/nightly' (the "
        "playlist, on nightly.cron in nightly.timezone). Needs a running Prefect server: start "
        "one with `prefect server start` and set PREFECT_API_URL (the README has the steps).\n\n"
        "Examples:\n\n"
        "  PREFECT_API_URL=http://127.0.0.1:4200/api covermill serve --out covers --config config.yaml\n\n"
        "  prefect deployment run 'covermill-song/cover-song' --param source=https://youtu.be/ID"
    )
)
def serve(
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
) -> None:
    settings, config_file, api = _for_a_server(config, "covermill serve needs a Prefect server that outlives it: start one with "
                                               "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api.")
    from prefect import serve as prefect_serve

    from covermill.flows.deployments import deployments

    print(f"serving covermill-song/cover-song and covermill-nightly/nightly ({settings.nightly.cron}, "
          f"{settings.nightly.timezone}) on {api}; Ctrl-C stops.", flush=True)
    prefect_serve(*deployments(settings, config_file, str(out)))


@app.command(
    help=(
        "Register the two deployments on a Prefect process work pool (created when missing), so "
        "workers on several machines share the runs: start `prefect worker start --pool POOL "
        "--type process --limit 1` on each GPU machine, with PREFECT_API_URL pointing at the same "
        "server. Workers find the flows in the installed covermill package; the work folder "
        "(--out) and the config file must be on storage they all see, at the same path. With "
        "nightly.fan_out: true the nightly run hands each song to the pool.\n\n"
        "Example:\n\n"
        "  covermill deploy --pool covermill --out /shared/covers --config /shared/config.yaml"
    )
)
def deploy(
    pool: Annotated[str, typer.Option("--pool", help="The process work pool's name.")] = "covermill",
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
) -> None:
    settings, config_file, _ = _for_a_server(config, "covermill deploy needs the Prefect server the workers use: "
                                             "set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api).")
    from covermill.flows.deployments import deploy_to_pool

    with _one_sentence_on_error():
        deploy_to_pool(settings, config_file, str(out), pool)
    print(f"deployed covermill-song/cover-song and covermill-nightly/nightly ({settings.nightly.cron}, "
          f"{settings.nightly.timezone}) on work pool {pool!r}.\n"
          f"start a worker on each machine: prefect worker start --pool {pool} --type process --limit 1")


def _run_publish(out: Path, settings, dry_run: bool, debug: bool) -> bool:
    """Today's share of the queue; prints what happened. False when it failed as a whole."""
    from covermill.flows.publish import publish
    from covermill.tasks.core.errors import CovermillError

    state = publish(str(out), settings, dry_run, return_state=True)
    if not state.is_completed():
        exc = state.result(raise_on_failure=False)
        if debug and isinstance(exc, BaseException):
            traceback.print_exception(exc)
        _say_error(str(exc) if isinstance(exc, CovermillError) else f"publishing failed ({exc!r}); run again with --debug for the traceback.")
        return False
    summary = state.result()
    if summary["dry_run"]:
        print(f"dry run: {len(summary['planned'])} of {summary['waiting']} waiting videos would be published today "
              f"(requests in each song's upload_request.json; `covermill queue` lists them).")
    for song_id, video_id in summary["published"].items():
        print(f"published: {song_id} -> https://youtu.be/{video_id}")
    for song_id, reason in summary["failed"].items():
        _say_error(f"song {song_id} was not published: {reason}")
    if summary["stopped"]:
        print(f"YouTube stopped uploads for today ({summary['stopped']}); the rest wait for tomorrow.")
    return not summary["failed"]


def _for_a_server(config: Optional[Path], no_server: str):
    """(settings, the config file deployments name, the API URL) for commands that register with
    a lasting Prefect server; `no_server` is the sentence when none is configured."""
    from prefect.settings import PREFECT_API_URL

    from covermill.flows.config import DEFAULT_CONFIG

    settings = _load_settings(config)
    if not PREFECT_API_URL.value():
        _say_error(no_server)
        raise typer.Exit(2)
    config_file = config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    return settings, str(config_file) if config_file else None, PREFECT_API_URL.value()


@contextmanager
def _one_sentence_on_error() -> Iterator[None]:
    """A CovermillError inside becomes its sentence on stderr and exit code 2."""
    from covermill.tasks.core.errors import CovermillError

    try:
        yield
    except CovermillError as exc:
        _say_error(str(exc))
        raise typer.Exit(2) from None


def _dry_run(dry_run: bool, publish: bool, settings) -> bool:
    """Whether this run stays dry: --dry-run, or neither --publish nor upload.enabled."""
    if dry_run and publish:
        _say_error("--dry-run and --publish contradict each other; give one of them.")
        raise typer.Exit(2)
    return dry_run or not (publish or settings.upload.enabled)


def _load_settings(config: Optional[Path]):
    from covermill.flows.config import load_config

    with _one_sentence_on_error():
        return load_config(config)


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
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
) -> None:
    settings = _load_settings(config)
    dry_run = _dry_run(dry_run, publish_now, settings)
    from covermill.flows.offline import route_prefect_console

    route_prefect_console(debug)
    if not _run_publish(out, settings, dry_run, debug):
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

    settings = _load_settings(config)
    if not ledger_path(out).exists():
        _say_error(f"{out}: no ledger here; give the --out folder that `covermill run` used.")
        raise typer.Exit(2)
    ledger = Ledger(ledger_path(out))
    now = datetime.now(timezone.utc)
    songs = waiting(ledger, out)
    budget = todays_budget(ledger, settings.upload.quota, now)
    slots = {s.song.song_id: s for s in todays_slots(songs, budget, settings.upload.quota, now, settings.upload.schedule)}
    quota = settings.upload.quota
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
        print(f"{number:3d}. {song.combined:7.3f}  Qmax {song.qmax:6.3f}  {when:28s} {song.title}{state}  [{song.song_id}]")


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
    from covermill.tasks.publish.auth import authorize, import_token

    settings = _load_settings(config)
    with _one_sentence_on_error():
        if token_file is not None:
            saved = import_token(token_file, settings.upload.auth, out)
            print(f"imported: the token is in {saved} (mode 0600).")
        else:
            authorize(settings.upload.auth, out, headless=headless, open_browser=not no_browser, port=port)


@app.command(
    help=(
        "Check every external piece covermill needs (FFmpeg, FluidSynth and the soundfont, "
        "ImageMagick, essentia, the basic-pitch and transkun models, torch, Prefect) and print "
        "the fix for each one missing. Exit code 1 if anything required is missing.\n\n"
        "Examples:\n\n"
        "  covermill doctor --config config.yaml\n\n"
        "  covermill doctor --reset-gpu-slot     # a killed run left the gpu slot held"
    )
)
def doctor(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file whose paths and devices to check.")] = None,
    reset_gpu_slot: Annotated[bool, typer.Option("--reset-gpu-slot", help="Free every slot of the gpu concurrency limit (after a killed run), then check.")] = False,
) -> None:
    from covermill.flows.doctor import run_checks

    settings = _load_settings(config)
    if reset_gpu_slot:
        from covermill.tasks.core.gpu_slot import reset_slots

        from prefect.settings import PREFECT_API_URL

        if settings.gpu.limit is None or not PREFECT_API_URL.value():
            _say_error("gpu.limit is null: there is no slot to reset." if settings.gpu.limit is None else
                       "no Prefect server configured (PREFECT_API_URL): each run's temporary server forgets its slots; nothing to reset.")
            raise typer.Exit(2)
        with _one_sentence_on_error():
            print(f"freed {reset_slots(settings.gpu.limit)} slot(s) of {settings.gpu.limit!r}")
    ok = True
    for check in run_checks(settings):
        mark = "ok  " if check.ok else "MISS"
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            ok = False
            print(f"       fix: {check.fix}")
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
