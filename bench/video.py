"""Video bench: render speed (as a multiple of realtime) and peak memory of each video style on a
real 4-minute cover, at 720p30 and 1080p30.

    python bench/video.py [SONG] [--seconds 240] [--cover DIR] [--json FILE]

The cover is made here the way the pipeline makes one: the song's first --seconds transcribed by
basic-pitch, arranged in the two-hands style on its tracked beats, rendered by FluidSynth, and a
thumbnail lettered with the title (the intro card). `--cover DIR` uses a song folder of a real run
instead (its winner.mid, winner.flac and thumbnail.jpg). Each render runs in a fresh Python process;
its peak memory is the largest sum of the resident memory of that process and everything it
started (workers, FFmpegs), sampled every 50 ms.

Targets (issue 16, 2 CPU cores): falling_notes 1080p30 >= 2x realtime, 720p30 >= 4x; still
picture >= 100x; peak memory <= 1 GB.

Example:
    python bench/video.py /usr/share/planetblupi/music/music004.ogg --seconds 240
"""

from __future__ import annotations

import argparse
import json
import os
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
from covermill.tasks.core.audio import probe  # noqa: E402
from covermill.tasks.core.midi import write_piece  # noqa: E402
from covermill.tasks.core.records import Song  # noqa: E402
from covermill.tasks.cover.render import render_winner  # noqa: E402
from covermill.tasks.media.falling_notes.timeline import NoteTimeline  # noqa: E402
from covermill.tasks.media.thumbnail import make_thumbnail  # noqa: E402

SIZES = {"720p30": (1280, 720), "1080p30": (1920, 1080)}


def tree_kb(root: int) -> int:
    """The resident memory (VmRSS) of process `root` and all its descendants, in kB."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry)] = int(fields.get("PPid", "0").strip())
        rss[int(entry)] = int(fields["VmRSS"].split()[0]) if "VmRSS" in fields else 0
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(rss.get(pid, 0) for pid in tree)


# One render in a fresh process: argv = style, width, height, workers, midi, flac, thumbnail, target.
RENDER = """
import sys, time
from pathlib import Path
from covermill.flows.config import load_config
from covermill.tasks.media.falling_notes.encoder import make_falling_notes_video
from covermill.tasks.media.falling_notes.timeline import NoteTimeline
from covermill.tasks.media.video import make_still_video
style, width, height, workers, midi, flac, thumbnail, target = sys.argv[1:]
video = load_config(None).video
settings = video.model_copy(update={"width": int(width), "height": int(height), "fps": 30.0,
    "falling_notes": video.falling_notes.model_copy(update={"workers": int(workers) or None})})
started = time.perf_counter()
if style == "still":
    make_still_video(Path(thumbnail), Path(flac), Path(target), settings)
else:
    make_falling_notes_video(NoteTimeline.read(Path(midi)), Path(flac), Path(target), settings, Path(thumbnail))
print(time.perf_counter() - started)
"""


def make_cover(song: Path, seconds: float, folder: Path) -> tuple[Path, Path, Path]:
    """(winner.mid, winner.flac, thumbnail.jpg) of the song's first `seconds`, as the pipeline makes them."""
    config = load_config(None)
    audio = folder / "song.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(song), "-ar", "44100", str(audio)], check=True)
    notes = load_generator("basic-pitch", config.generate.options.get("basic-pitch")).transcribe(audio)
    analysis = analyse(audio, notes)
    piece = arrange_piece(notes, config.arrange.styles["two-hands"], None, analysis)
    midi = write_piece(piece, folder / "winner.mid")
    flac = render_winner(midi, folder / "winner.flac", config.render)
    title = song.stem.replace("-", " ").replace("_", " ").title()
    record = Song(id="bench", source=str(song), source_id="bench", title=title, duration=seconds, original=song, audio=audio)
    thumbnail = make_thumbnail(record, folder / "thumbnail.jpg", config.thumbnail)
    return midi, flac, thumbnail


def measure(label: str, args: list[str], length: float) -> dict[str, float]:
    """Seconds, multiple of realtime and peak memory of one render (RENDER with `args`). The seconds
    are the render's own (reading the MIDI included), not Python's start and imports."""
    render = subprocess.Popen([sys.executable, "-c", RENDER, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    while render.poll() is None:
        peak = max(peak, tree_kb(render.pid))
        time.sleep(0.05)
    if render.returncode != 0:
        sys.exit(f"{label}: the render failed (exit {render.returncode})")
    seconds = float(render.stdout.read().split()[-1])
    print(f"{label:32s} {seconds:7.2f} s  {length / seconds:6.1f}x realtime  peak {peak / 1024:5.0f} MB", flush=True)
    return {"seconds": round(seconds, 2), "realtime": round(length / seconds, 1), "peak_mb": round(peak / 1024)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Example:")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, nargs="?", default=Path("/usr/share/planetblupi/music/music004.ogg"),
                        help="a song to make the cover of (default: planetblupi's music004, from Debian)")
    parser.add_argument("--seconds", type=float, default=240.0, help="how much of the song (default 240: a 4-minute cover)")
    parser.add_argument("--cover", type=Path, help="a song folder of a real run to use instead (winner.mid, winner.flac, thumbnail.jpg)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="covermill-bench-video-") as tmp:
        folder = Path(tmp)
        if args.cover:
            midi, flac, thumbnail = (args.cover / name for name in ("winner.mid", "winner.flac", "thumbnail.jpg"))
            if not all(p.is_file() for p in (midi, flac, thumbnail)):
                sys.exit(f"{args.cover}: needs winner.mid, winner.flac and thumbnail.jpg (a finished song's folder)")
        elif not args.song.is_file():
            sys.exit(f"{args.song}: no such audio file; install Debian's planetblupi-music-ogg or give a song")
        else:
            print(f"making a {args.seconds:.0f} s cover of {args.song.name} (basic-pitch, two-hands, FluidSynth)...", flush=True)
            midi, flac, thumbnail = make_cover(args.song, args.seconds, folder)
        length = probe(flac).duration
        timeline = NoteTimeline.read(midi)
        print(f"cover: {length:.1f} s, {len(timeline)} notes ({len(timeline) / length:.1f} a second), {os.cpu_count()} CPU cores")
        figures: dict[str, object] = {"cover_seconds": round(length, 2), "notes": len(timeline), "cores": os.cpu_count()}
        files = [str(midi), str(flac), str(thumbnail)]
        for name, (width, height) in SIZES.items():
            size = [str(width), str(height)]
            runs = {
                f"still {name}": ["still", *size, "0", *files, str(folder / "still.mp4")],
                f"falling_notes {name}": ["falling_notes", *size, "0", *files, str(folder / "falling.mp4")],
                f"falling_notes {name}, 1 process": ["falling_notes", *size, "1", *files, str(folder / "falling.mp4")],
            }
            for label, render_args in runs.items():
                figures[label] = measure(label, render_args, length)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
