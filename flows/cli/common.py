"""What every command shares: the app, the --out and --config options, settings loading, and the one
way an error reaches the user (a sentence on stderr, a traceback only with --debug)."""

from __future__ import annotations

import errno
import os
import sys
import traceback
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help=(
        "covermill turns songs into ranked AI piano covers, YouTube-ready videos, and (once you turn publishing on) YouTube uploads, best first, a few a day.\n\n"
        "Examples:\n\n"
        "  covermill run song.mp3 --dry-run\n\n"
        "  covermill run ~/Music/album/ --out covers --dry-run\n\n"
        "  covermill run https://www.youtube.com/watch?v=VIDEO_ID --config config.yaml\n\n"
        "  covermill auth --headless\n\n"
        "  covermill nightly songs.txt --out covers\n\n"
        "  covermill server start\n\n"
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
VideoStyle = Annotated[Optional[str], typer.Option(
    "--video-style", help="falling_notes (the cover's notes falling onto a keyboard) or still (the thumbnail held); overrides video.style.",
    show_default=False)]
Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks and Prefect's error records.")]


def plain(text: object) -> str:
    """Text from outside (a title, a file name) for a terminal: its control characters (a newline,
    an escape sequence) shown as escapes, so that it stays on its line and cannot drive the terminal."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in str(text))


def say_error(message: str) -> None:
    print(f"covermill: {plain(message)}", file=sys.stderr)


def tell_failure(found, debug: bool) -> None:
    """A failed run's Outcome (flows/outcome.py) on stderr: its sentence, and the traceback with --debug."""
    if debug and found.error is not None:
        traceback.print_exception(found.error)
    say_error(found.sentence)


@contextmanager
def one_sentence_on_error() -> Iterator[None]:
    """A CovermillError inside becomes its sentence on stderr and exit code 2."""
    from covermill.tasks.core.errors import CovermillError

    try:
        yield
    except CovermillError as exc:
        say_error(str(exc))
        raise typer.Exit(2) from None


def check_work_folder(out: Path) -> None:
    """The work folder exists and takes a file (made when missing), before any song is started:
    else one sentence and exit code 2, instead of every song failing on its ledger."""
    probe = Path(out) / f".covermill-write-check-{os.getpid()}"
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            say_error(f"{out}: the work folder's disk is full ({exc.strerror}); free space on it, or give another folder with --out.")
        else:
            say_error(f"{out}: the work folder cannot be written ({exc.strerror}); make it writable for this user, "
                      "or give another folder with --out.")
        raise typer.Exit(2) from None


def load_settings(config: Optional[Path]):
    from covermill.flows.config import load_config

    with one_sentence_on_error():
        return load_config(config)


def decide_dry_run(dry_run: bool, publish: bool, settings) -> bool:
    """Whether this run stays dry: --dry-run, or neither --publish nor upload.enabled."""
    if dry_run and publish:
        say_error("--dry-run and --publish contradict each other; give one of them.")
        raise typer.Exit(2)
    return dry_run or not (publish or settings.upload.enabled)


def start_flow_logging(debug: bool) -> None:
    """Right before a command's first flow: its Prefect server, told in one line, and Prefect's console routed."""
    from covermill.flows.offline import route_prefect_console

    use_prefect_server()
    route_prefect_console(debug)


def use_prefect_server() -> None:
    """PREFECT_API_URL when Prefect has one (environment, profile), else covermill's local server when
    it answers (`covermill server start`), else Prefect's temporary server, which the first flow
    starts (5-16 s); one line on stdout says which."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL

    from covermill.flows.local_server import choose, prefect_home

    url, line = choose(PREFECT_API_URL.value(), prefect_home())
    if url is not None:
        os.environ["PREFECT_API_URL"] = url
        # Prefect read the environment once, when the stage modules imported it: read it again
        prefect.context.refresh_global_settings_context()
    print(line, flush=True)
