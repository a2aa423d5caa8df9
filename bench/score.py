"""Score bench: seconds per minute of music for the MusicXML and for the engraved PDF, and the share of
the winner MIDI's notes the score shows at the same pitch and onset on the grid.

    python bench/score.py [SONG] [--seconds 240] [--cover DIR ...] [--json FILE]

The cover is made here the way bench/video.py makes one: the song's first --seconds transcribed by
basic-pitch, analysed (beat grid, meter, key) and arranged in the two-hands style. `--cover DIR`
measures song folders of real runs instead (their winner.mid or candidates/*.mid and
analysis.json); give several to see the note match on different songs. The MusicXML is read back
with ElementTree (every <note>, its <chord/>, <backup>, <forward>, ties), not with the writer.

Targets (issue 18, 2 CPU cores): MusicXML <= 2 s and PDF <= 15 s per minute of music; >= 99 % of
the MIDI's notes at their pitch and onset on the grid.

Examples:
    python bench/score.py /usr/share/planetblupi/music/music004.ogg --seconds 240
    python bench/score.py --cover out/songs/0123456789abcdef --cover out/songs/fedcba9876543210
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()

from covermill.flows.config import load_config  # noqa: E402
from covermill.models.generator import load_generator  # noqa: E402
from covermill.tasks.arrange.analysis import analyse, load_analysis, save_analysis  # noqa: E402
from covermill.tasks.arrange.styles import arrange_piece  # noqa: E402
from covermill.tasks.core.midi import read_piece, write_piece  # noqa: E402
from covermill.tasks.media.score.engrave import engrave  # noqa: E402
from covermill.tasks.media.score.musicxml import write_musicxml  # noqa: E402
from covermill.tasks.media.score.notation import Notation, notate, quantise  # noqa: E402
from covermill.tasks.media.score.stage import score_grid  # noqa: E402

STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def make_cover(song: Path, seconds: float, folder: Path) -> Path:
    """winner.mid and analysis.json of the song's first `seconds`, as the pipeline makes them."""
    config = load_config(None)
    audio = folder / "song.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(song), "-ar", "44100", str(audio)], check=True)
    notes = load_generator("basic-pitch", config.generate.options.get("basic-pitch")).transcribe(audio)
    analysis = analyse(audio, notes)
    save_analysis(analysis, folder / "analysis.json")
    return write_piece(arrange_piece(notes, config.arrange.styles["two-hands"], None, analysis), folder / "winner.mid")


def score_onsets(musicxml: Path) -> list[tuple[int, float]]:
    """(MIDI pitch, onset in quarter notes from the score's start) of every struck note (not a tie's continuation)."""
    found = []
    start = 0.0
    for measure in ElementTree.parse(musicxml).getroot().find("part").iter("measure"):
        divisions = measure.findtext("attributes/divisions")
        if divisions:
            per_quarter = float(divisions)
        cursor = longest = 0.0
        onset = 0.0
        for element in measure:
            length = float(element.findtext("duration") or 0) / per_quarter
            if element.tag == "backup":
                cursor -= length
            elif element.tag == "forward":
                cursor += length
            elif element.tag == "note":
                if element.find("chord") is None:
                    onset = cursor
                    cursor += length
                pitch = element.find("pitch")
                ties = {tie.get("type") for tie in element.findall("tie")}
                if pitch is not None and "stop" not in ties:
                    midi = 12 * (int(pitch.findtext("octave")) + 1) + STEPS[pitch.findtext("step")] + int(float(pitch.findtext("alter") or 0))
                    found.append((midi, start + onset))
            longest = max(longest, cursor)
        start += longest
    return found


def note_match(midi: Path, notation: Notation, musicxml: Path, analysis_grid) -> float:  # noqa: ANN001 (a BeatGrid)
    """Share of the MIDI's notes (pitch, onset on the grid) that the score strikes at the same step."""
    notes = read_piece(midi).notes
    import numpy as np

    onsets, _ = quantise(np.array([n.start for n in notes]), np.array([n.end for n in notes]), analysis_grid, notation.steps)
    expected = Counter((n.pitch, int(o) - notation.bars[0].start) for n, o in zip(notes, onsets.tolist()))
    shown = Counter((p, int(round(q * notation.steps))) for p, q in score_onsets(musicxml))
    return sum((expected & shown).values()) / max(1, sum(expected.values()))


def measure(midi: Path, analysis_file: Path, folder: Path, label: str) -> dict[str, float]:
    piece = read_piece(midi)
    analysis = load_analysis(analysis_file)
    grid = score_grid(piece, analysis)
    minutes = max(n.end for n in piece.notes) / 60
    started = time.perf_counter()
    notation = notate(piece.notes, grid, key=analysis.key if analysis else "")
    musicxml = write_musicxml(notation, folder / "score.musicxml", label, "bench")
    xml_s = time.perf_counter() - started
    started = time.perf_counter()
    pages = engrave(musicxml, folder / "score.pdf", folder / "score.png", label, "bench", "arr. covermill")
    pdf_s = time.perf_counter() - started
    match = note_match(midi, notation, musicxml, grid)
    print(f"{label:40s} {minutes:4.1f} min {len(piece.notes):6d} notes {len(notation.bars):4d} bars {pages:3d} pages  "
          f"MusicXML {xml_s / minutes:5.2f} s/min  PDF {pdf_s / minutes:5.2f} s/min  notes matched {100 * match:6.2f} %", flush=True)
    return {"minutes": round(minutes, 2), "notes": len(piece.notes), "bars": len(notation.bars), "pages": pages,
            "musicxml_s_per_min": round(xml_s / minutes, 3), "pdf_s_per_min": round(pdf_s / minutes, 3),
            "note_match": round(match, 5), "steps_per_beat": notation.steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Examples:")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, nargs="?", default=Path("/usr/share/planetblupi/music/music004.ogg"),
                        help="a song to make the cover of (default: planetblupi's music004, from Debian)")
    parser.add_argument("--seconds", type=float, default=240.0, help="how much of the song (default 240: a 4-minute cover)")
    parser.add_argument("--cover", type=Path, action="append", default=[],
                        help="a song folder of a real run (winner.mid or candidates/*.mid, analysis.json); repeatable")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, object] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="covermill-bench-score-") as tmp:
        folder = Path(tmp)
        if args.cover:
            for cover in args.cover:
                midis = [cover / "winner.mid"] if (cover / "winner.mid").is_file() else sorted((cover / "candidates").glob("*.mid"))
                if not midis or not (cover / "analysis.json").is_file():
                    sys.exit(f"{cover}: needs winner.mid (or candidates/*.mid) and analysis.json (a song folder of a run)")
                for midi in midis:
                    label = f"{cover.name}/{midi.stem}"
                    figures[label] = measure(midi, cover / "analysis.json", folder, label)
        elif not args.song.is_file():
            sys.exit(f"{args.song}: no such audio file; install Debian's planetblupi-music-ogg or give a song")
        else:
            print(f"making a {args.seconds:.0f} s cover of {args.song.name} (basic-pitch, two-hands)...", flush=True)
            midi = make_cover(args.song, args.seconds, folder)
            figures["cover"] = measure(midi, folder / "analysis.json", folder, f"{args.song.stem} two-hands")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
