"""The `covermill` command: run songs through the cover_song flow, and check the machine."""

from __future__ import annotations

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()  # before anything imports Prefect

import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402

app = typer.Typer(
    help=(
        "covermill turns songs into ranked AI piano covers and YouTube-ready videos.\n\n"
        "Examples:\n\n"
        "  covermill run song.mp3 --dry-run\n\n"
        "  covermill run ~/Music/album/ --out covers --dry-run\n\n"
        "  covermill run https://www.youtube.com/watch?v=VIDEO_ID --config config.yaml\n\n"
        "  covermill doctor"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _say_error(message: str) -> None:
    print(f"covermill: {message}", file=sys.stderr)


@app.command(
    help=(
        "Make piano covers of SOURCE(s): audio files, folders of audio files, or http(s) URLs.\n\n"
        "Each song gets a folder under --out (named by a stable id) holding the original audio, "
        "the candidate MIDIs and their renders, ranking.json, winner.mid, thumbnail.jpg and "
        "video.mp4. Running the same source again skips finished stages. One bad source is "
        "reported and the others go on; the exit code is 1 if any failed.\n\n"
        "Examples:\n\n"
        "  covermill run song.ogg --dry-run\n\n"
        "  covermill run a.mp3 b.flac https://example.com/c.ogg --out covers --dry-run\n\n"
        "  covermill run ~/Music/album/ --config my-config.yaml --dry-run\n\n"
        "  covermill run song.ogg --generators basic-pitch,pop2piano --arrangers 1,3,20 --seeds 0,1 --dry-run"
    )
)
def run(
    sources: Annotated[list[str], typer.Argument(help="Audio files, folders of audio files, or http(s) URLs.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output (work) folder: one sub-folder per song, plus the ledger.")] = Path("out"),
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (default: ./config.yaml if present, else built-in defaults).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Stop at the local video; never upload.")] = False,
    generators: Annotated[Optional[str], typer.Option("--generators", "-g", help="Generators to run, comma-separated (overrides config), e.g. basic-pitch,pop2piano.", show_default=False)] = None,
    arrangers: Annotated[Optional[str], typer.Option("--arrangers", "-a", help="Pop2Piano arrangers: 'all' or composer numbers 1-21 such as 1,3,20 (the -c of the pop2piano CLI fork).", show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Sampling seeds, comma-separated, for Pop2Piano and the random arrangement styles, e.g. 0,1,2.", show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and Prefect's error records.")] = False,
) -> None:
    from covermill.flows.config import load_config, with_overrides
    from covermill.tasks.download import expand_sources
    from covermill.tasks.errors import CovermillError

    try:
        settings = with_overrides(load_config(config), generators, arrangers, seeds)
        songs = expand_sources(sources)
    except CovermillError as exc:
        if debug:
            traceback.print_exc()
        _say_error(str(exc))
        raise typer.Exit(2) from None

    from covermill.flows.cover_song import cover_song
    from covermill.flows.offline import route_prefect_console

    route_prefect_console(debug)
    failed = 0
    for number, source in enumerate(songs, 1):
        print(f"[{number}/{len(songs)}] {source}", flush=True)
        state = cover_song(source, str(out), settings, dry_run, return_state=True)
        if state.is_completed():
            result = state.result()
            print(
                f"done: {result['title']!r} -> {result['folder']}\n"
                f"  video:   {result['video']}\n"
                f"  MIDI:    {result['winner_midi']} (pick: {result['pick']} of {result['candidates']} candidates)\n"
                f"  ranking: {result['ranking']}",
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
    if failed:
        raise typer.Exit(1)


@app.command(
    help=(
        "Check every external piece covermill needs (FFmpeg, FluidSynth and the soundfont, "
        "ImageMagick, essentia, the basic-pitch and transkun models, torch, Prefect) and print "
        "the fix for each one missing. Exit code 1 if anything required is missing.\n\n"
        "Example:\n\n"
        "  covermill doctor --config config.yaml"
    )
)
def doctor(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file whose paths and devices to check.")] = None,
) -> None:
    from covermill.flows.config import load_config
    from covermill.flows.doctor import run_checks
    from covermill.tasks.errors import CovermillError

    try:
        settings = load_config(config)
    except CovermillError as exc:
        _say_error(str(exc))
        raise typer.Exit(2) from None
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
