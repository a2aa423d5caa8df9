"""`covermill run` (songs now) and `covermill nightly` (every new song of a playlist)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from covermill.flows.cli.common import (
    ConfigFile,
    Debug,
    VideoStyle,
    WorkFolder,
    app,
    check_work_folder,
    decide_dry_run,
    load_settings,
    one_sentence_on_error,
    plain,
    say_error,
    start_flow_logging,
    tell_failure,
)


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
        "  covermill run song.ogg --video-style still --dry-run\n\n"
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
    video_style: VideoStyle = None,
    debug: Debug = False,
) -> None:
    from covermill.flows.config import load_config, with_overrides
    from covermill.flows.preflight import preflight
    from covermill.tasks.cover.download import expand_sources

    with one_sentence_on_error():
        settings = with_overrides(load_config(config), generators, arrangers, seeds, video_style)
        songs = expand_sources(sources)
        preflight(settings)
    dry_run = decide_dry_run(dry_run, publish, settings)
    check_work_folder(out)

    from covermill.flows.cli.publishing import run_publish
    from covermill.flows.cover_song import cover_song
    from covermill.flows.outcome import outcome
    from covermill.tasks.core.layout import gallery_index

    start_flow_logging(debug)
    failed = 0
    for number, source in enumerate(songs, 1):
        print(f"[{number}/{len(songs)}] {source}", flush=True)
        # every song first, then one publishing pass: best first across all of them
        found = outcome(cover_song(source=source, out_dir=str(out), config=settings, publish_queue=False, return_state=True), source)
        if not found.ok:
            failed += 1
            tell_failure(found, debug)
            continue
        result = found.result
        print(
            f"done: {result.title!r} -> {result.folder}\n"
            f"  video:   {result.video}\n"
            f"  MIDI:    {result.winner_midi} (pick: {result.pick} of {result.candidates} candidates)\n"
            f"  ranking: {result.ranking}\n"
            f"  review:  {result.review_page} (all songs: {gallery_index(out)})",
            flush=True,
        )
    if len(songs) > 1:
        print(f"{len(songs) - failed} of {len(songs)} songs done, {failed} failed.")
    if not run_publish(out, settings, dry_run, debug) or failed:
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
    video_style: VideoStyle = None,
    debug: Debug = False,
) -> None:
    from covermill.flows.config import with_overrides
    from covermill.flows.nightly import nightly as nightly_flow
    from covermill.flows.nightly import summary_markdown
    from covermill.flows.outcome import outcome
    from covermill.flows.preflight import preflight

    settings = load_settings(config)
    with one_sentence_on_error():
        settings = with_overrides(settings, video_style=video_style)
        preflight(settings)
    dry_run = decide_dry_run(dry_run, publish, settings)
    check_work_folder(out)
    if max_songs is not None:
        settings = settings.model_copy(update={"nightly": settings.nightly.model_copy(update={"max_songs": max_songs})})
    start_flow_logging(debug)
    found = outcome(nightly_flow(playlist=playlist, out_dir=str(out), config=settings, dry_run=dry_run, return_state=True),
                    "the nightly run")
    if not found.ok:
        tell_failure(found, debug)
        raise typer.Exit(1)
    summary = found.result
    print(summary_markdown(summary, text=plain))
    if summary.failed:
        say_error(f"{len(summary.failed)} of {len(summary.failed) + len(summary.done) + len(summary.rejected)} songs failed "
                  "tonight; the reasons are in the summary above, and they are tried again next night.")
    if summary.publish_error:
        say_error(f"publishing did not run: {summary.publish_error}")
    if summary.failed or summary.publish_error:
        raise typer.Exit(1)
