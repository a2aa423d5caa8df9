"""Cut a split of the quality bench's corpus (bench/corpus.py) into a folder for bench/quality.py.

    python bench/cut_corpus.py OUT_DIR [--split heldout|tune|all] [--seconds 60] [--genre G ...]

Every song of the split becomes OUT_DIR/<name>.ogg, `--seconds` long from the corpus's start second;
a recording with a same-named .mid score (planetblupi) gets OUT_DIR/<name>.mid cut at the same place.
Where the song ends before start + seconds, the cut starts earlier so that it keeps its length; a
song shorter than `--seconds` is cut whole. Both are said. Members of the .pk3 zip archives (nexuiz,
ufoai) are extracted to a scratch file first. Songs already cut are kept; OUT_DIR/.cut, written last,
records the split, the length and a digest of the songs' entries, and a folder cut otherwise is
refused. `make bench-quality-heldout` and `make bench-quality-tune` cut with this.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from covermill.tasks.core.midi import read_midi, write_midi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import GENRES, SPLITS, Song, select  # noqa: E402
from cut_dataset import cut_audio, cut_notes  # noqa: E402


def duration_of(path: Path) -> float:
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                            check=True, capture_output=True, text=True)
    return float(result.stdout.strip())


def window(duration: float, start: float, seconds: float) -> tuple[float, float, str | None]:
    """(start, length, note): the stretch to cut from a recording `duration` long, and why it moved if it did."""
    if duration <= seconds:
        return 0.0, duration, f"only {duration:.1f} s long: cut whole, not {seconds:g} s"
    if start + seconds > duration:
        return duration - seconds, seconds, f"ends at {duration:.1f} s: cut from {duration - seconds:.1f} s, not {start:g} s"
    return start, seconds, None


def missing(songs: list[Song]) -> list[Song]:
    return [s for s in songs if not Path(s.path).exists()]


@contextmanager
def recording(song: Song, scratch: Path) -> Iterator[Path]:
    """The song's recording as a file FFmpeg can read: the path itself, or its member extracted."""
    if song.member is None:
        yield Path(song.path)
        return
    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / f"{song.name}{Path(song.member).suffix}"
    try:
        with zipfile.ZipFile(song.path) as archive, archive.open(song.member) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
        yield target
    finally:
        target.unlink(missing_ok=True)


def cut_song(song: Song, out_dir: Path, seconds: float) -> tuple[Path, str | None]:
    """Cut one song into OUT_DIR/<name>.ogg (and .mid); (the cut, a note when it is not the asked stretch)."""
    target = out_dir / f"{song.name}.ogg"
    if target.exists():
        return target, None
    with recording(song, out_dir / ".scratch") as source:
        start, length, note = window(duration_of(source), song.start, seconds)
        cut_audio(source, target, start, length)
    score = Path(song.path).with_suffix(".mid")
    if song.member is None and score.exists():
        write_midi(cut_notes(read_midi(score), start, length), target.with_suffix(".mid"))
    return target, note


def stamp_text(label: str, seconds: float, songs: list[Song]) -> str:
    digest = hashlib.sha256(repr([(s.name, s.path, s.member, s.start) for s in songs]).encode()).hexdigest()[:12]
    return f"corpus {label} {seconds:g} {digest}\n"


def cut_corpus(songs: list[Song], out_dir: Path, seconds: float, label: str = "custom") -> list[Path]:
    """Cut every song into out_dir; the stamp (.cut) goes last, so `make` sees a whole cut or none."""
    if not songs:
        raise SystemExit("no songs to cut")
    absent = missing(songs)
    if absent:
        packages = " ".join(sorted({s.package for s in absent}))
        raise SystemExit(f"{len(absent)} recordings missing (first: {absent[0].path}); "
                         f"install {packages} (`make bench-corpus` does)")
    names = [s.name for s in songs]
    if len(set(names)) != len(names):
        raise SystemExit("two songs share a name")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / ".cut"
    wanted = stamp_text(label, seconds, songs)
    if stamp.exists() and stamp.read_text() != wanted:
        raise SystemExit(f"{out_dir} holds another cut ({stamp.read_text().strip()}); use another folder or remove it")
    made = []
    for song in songs:
        target, note = cut_song(song, out_dir, seconds)
        if note:
            print(f"{song.name}: {note}", file=sys.stderr)
        made.append(target)
    shutil.rmtree(out_dir / ".scratch", ignore_errors=True)
    stamp.write_text(wanted)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="heldout", help="which songs (default heldout)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each cut (default 60)")
    parser.add_argument("--genre", action="append", choices=GENRES, help="only this genre (repeatable)")
    args = parser.parse_args(argv)
    label = args.split + ("+" + "+".join(sorted(args.genre)) if args.genre else "")
    made = cut_corpus(select(args.split, args.genre), args.out_dir, args.seconds, label)
    print(f"{len(made)} songs in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
