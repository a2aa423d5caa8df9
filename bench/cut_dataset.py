"""Cut a quality-bench dataset: the same stretch of every recording, and of its MIDI score if any.

    python bench/cut_dataset.py MUSIC_DIR OUT_DIR [--start 30] [--seconds 60]

Every audio file in MUSIC_DIR becomes OUT_DIR/<name>.ogg, `--seconds` long from `--start`; a
same-named .mid next to it becomes OUT_DIR/<name>.mid holding the notes of that stretch (drums
left out, times shifted to the cut). Files already cut with the same settings are kept.
`make bench-quality` cuts Debian's planetblupi recordings this way.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from covermill.models.notes import Note
from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.midi import read_midi, write_midi

AUDIO_SUFFIXES = {".ogg", ".oga", ".opus", ".mp3", ".flac", ".wav", ".m4a", ".aac", ".webm"}


def cut_notes(notes: list[Note], start: float, seconds: float) -> list[Note]:
    """The notes sounding within [start, start + seconds), clipped to it and shifted to begin at 0."""
    end = start + seconds
    return [
        Note(max(n.start, start) - start, min(n.end, end) - start, n.pitch, n.velocity)
        for n in notes if n.end > start and n.start < end and min(n.end, end) > max(n.start, start)
    ]


def cut_audio(source: Path, target: Path, start: float, seconds: float) -> Path:
    with atomic_output(target) as tmp:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(source),
             "-c:a", "libvorbis", "-q:a", "6", "-f", "ogg", str(tmp)],
            check=True,
        )
    return target


def cut_dataset(music_dir: Path, out_dir: Path, start: float, seconds: float) -> list[Path]:
    sources = sorted(p for p in music_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if not sources:
        raise SystemExit(f"no audio files in {music_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / ".cut"
    wanted = f"{start} {seconds}\n"
    if stamp.exists() and stamp.read_text() != wanted:
        raise SystemExit(f"{out_dir} holds a cut with other settings ({stamp.read_text().strip()}); use another folder")
    made = []
    for source in sources:
        target = out_dir / f"{source.stem}.ogg"
        if not target.exists():
            cut_audio(source, target, start, seconds)
        score = source.with_suffix(".mid")
        if score.exists() and not target.with_suffix(".mid").exists():
            write_midi(cut_notes(read_midi(score), start, seconds), target.with_suffix(".mid"))
        made.append(target)
    stamp.write_text(wanted)  # last: `make` takes it to mean the whole cut is there
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("music_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--start", type=float, default=30.0, help="seconds into each recording (default 30)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each cut (default 60)")
    args = parser.parse_args(argv)
    made = cut_dataset(args.music_dir, args.out_dir, args.start, args.seconds)
    print(f"{len(made)} songs in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
