"""What arranging adds to the generate stage: seconds per song-minute for the song's analysis and for
each arrangement style, on top of the transcription itself.

    python bench/arrange.py SONG [--seconds 240] [--config config.yaml]

The song (any format FFmpeg reads; its first --seconds) is transcribed once with basic-pitch (timed
apart: that cost is the transcriber's, not the arrangement's), then the analysis (beats, meter,
chords, key, Melodia) runs once and every style x seed of the config arranges the transcription. The
issue's budget is the analysis plus all styles: at most 2 s per song-minute on 2 cores.

Example:
    python bench/arrange.py /usr/share/planetblupi/music/music003.ogg --seconds 240
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()

from covermill.flows.config import load_config  # noqa: E402
from covermill.models.generator import load_generator  # noqa: E402
from covermill.tasks.arrange.analysis import analyse  # noqa: E402
from covermill.tasks.arrange.styles import arrange_piece  # noqa: E402


def cut(song: Path, seconds: float, folder: Path) -> Path:
    """The first `seconds` of the song as a 44.1 kHz WAV, as the download stage leaves it."""
    target = folder / "song.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(song), "-ar", "44100", str(target)], check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Example:")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, help="an audio file (the bench uses its first --seconds)")
    parser.add_argument("--seconds", type=float, default=240.0, help="how much of the song to arrange (default 240: a 4-minute song)")
    parser.add_argument("--config", type=Path, help="covermill settings (default ./config.yaml if present)")
    args = parser.parse_args()
    if not args.song.is_file():
        sys.exit(f"{args.song}: no such audio file; give a song FFmpeg can read.")
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        audio = cut(args.song, args.seconds, Path(tmp))
        minutes = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(audio)],
                                       capture_output=True, text=True, check=True).stdout) / 60.0
        started = time.perf_counter()
        notes = load_generator("basic-pitch", config.generate.options.get("basic-pitch")).transcribe(audio)
        transcribe_s = time.perf_counter() - started
        started = time.perf_counter()
        analysis = analyse(audio, notes)
        analysis_s = time.perf_counter() - started
        styles: dict[str, float] = {}
        for style, seed in config.arrange.variants():
            started = time.perf_counter()
            arrange_piece(notes, config.arrange.styles[style], seed, analysis)
            styles[f"{style}" + (f" s{seed}" if seed is not None else "")] = time.perf_counter() - started
    arranging = analysis_s + sum(styles.values())
    print(f"song: {args.song.name}, {minutes:.2f} min, {len(notes)} transcribed notes, {analysis.tempo:.0f} BPM")
    print(f"transcription (basic-pitch, not arrangement): {transcribe_s / minutes:.2f} s per song-minute")
    print(f"analysis: {analysis_s / minutes:.2f} s per song-minute")
    for name, seconds in styles.items():
        print(f"  {name:20s} {seconds / minutes:.3f} s per song-minute")
    print(f"arrangement in all (analysis + {len(styles)} candidates): {arranging / minutes:.2f} s per song-minute (budget 2.0)")


if __name__ == "__main__":
    main()
