"""Ranking bench: seconds per candidate of the rank stage on a real 4-minute song, and each
candidate's Qmax, to hold a faster path to the figures of the one before.

    python bench/rank.py [SONG] [--seconds 240] [--seeds 0,1] [--workers 0] [--json FILE] [--compare FILE]

The candidates are made here the way the pipeline makes them: the song's first --seconds
transcribed by basic-pitch and arranged in every style of config.yaml (two seeds for a style
with a random step), each rendered by FluidSynth as the render stage does (kept in
.cache/bench/rank-<song>-<seconds>s/ so a second run measures the ranking alone). Then
`rank_candidates` runs as the rank stage calls it, timed whole; its Qmax, aligned share and WPD per
candidate go to --json. `--compare FILE` reads such a JSON from an earlier run (another commit)
and prints each candidate's Qmax change: a faster path must keep every one within 1 %.

Target (issue 19, 2 CPU cores): <= 1 s per candidate at 4 minutes, Qmax unchanged within 1 %.

Examples:
    python bench/rank.py --json /tmp/rank-before.json
    python bench/rank.py --compare /tmp/rank-before.json
    python bench/rank.py --seeds 0-29
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()

from covermill.flows.config import load_config  # noqa: E402
from covermill.models.generator import load_generator  # noqa: E402
from covermill.tasks.arrange.analysis import analyse  # noqa: E402
from covermill.tasks.arrange.styles import arrange_piece, style_uses_seed  # noqa: E402
from covermill.tasks.core.midi import write_piece  # noqa: E402
from covermill.tasks.core.records import Candidate  # noqa: E402
from covermill.tasks.cover.render import render_midi  # noqa: E402
from covermill.tasks.rank.qmax import PROTOCOL  # noqa: E402
from covermill.tasks.rank.ranking import rank_candidates  # noqa: E402

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"
QMAX_TOLERANCE = 0.01


def make_candidates(song: Path, seconds: float, folder: Path, seeds: list[int]) -> tuple[Path, list[Candidate], dict[str, Path]]:
    """(the song's audio, every style's candidate (a style with a random step once per seed), their renders),
    made once into `folder`."""
    config = load_config(None)
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / "song.wav"
    if not audio.is_file():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(song), "-ar",
                        str(PROTOCOL.sample_rate), str(audio)], check=True)
    candidates, renders, notes, analysis = [], {}, None, None
    for style, steps in config.arrange.styles.items():
        for seed in (seeds if style_uses_seed(steps) else [None]):
            name = f"basic-pitch-{style}" + ("" if seed is None else f"-s{seed}")
            midi, render = folder / f"{name}.mid", folder / f"{name}.flac"
            if not render.is_file():
                if notes is None:
                    print(f"transcribing and analysing {audio.name} ({seconds:.0f} s)...", flush=True)
                    notes = load_generator("basic-pitch", config.generate.options.get("basic-pitch")).transcribe(audio)
                    analysis = analyse(audio, notes)
                write_piece(arrange_piece(notes, steps, seed, analysis), midi)
                render_midi(midi, render, config.render, PROTOCOL.min_note_seconds)
                print(f"  rendered {name}", flush=True)
            candidates.append(Candidate(id=name, generator="basic-pitch", style=style, seed=seed, midi=midi))
            renders[name] = render
    return audio, candidates, renders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Examples:")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, nargs="?", default=Path("/usr/share/planetblupi/music/music004.ogg"),
                        help="a song to make the candidates of (default: planetblupi's music004, from Debian)")
    parser.add_argument("--seconds", type=float, default=240.0, help="how much of the song (default 240: 4 minutes)")
    parser.add_argument("--seeds", default="0,1", help="seeds of the styles with a random step (default 0,1: 13 candidates; "
                        "0-29 makes 41, as many as a Pop2Piano song's)")
    parser.add_argument("--workers", type=int, default=0, help="rank.workers (default 0: every usable core)")
    parser.add_argument("--repeat", type=int, default=2, help="times the ranking runs; the fastest counts (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures and every candidate's Qmax here")
    parser.add_argument("--compare", type=Path, help="a --json of an earlier run: print each Qmax's change")
    args = parser.parse_args()
    if not args.song.is_file():
        sys.exit(f"{args.song}: no such audio file; install Debian's planetblupi-music-ogg or give a song")
    folder = CACHE / f"rank-{args.song.stem}-{args.seconds:.0f}s"
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last) + 1)) if last else [int(s) for s in args.seeds.split(",")]
    audio, candidates, renders = make_candidates(args.song, args.seconds, folder, seeds)
    settings = load_config(None).rank.model_copy(update={"workers": args.workers})
    took = []
    for _ in range(max(1, args.repeat)):
        started = time.perf_counter()
        ranking = rank_candidates(audio, candidates, renders, settings)
        took.append(time.perf_counter() - started)
    best = min(took)
    print(f"{len(candidates)} candidates of {args.seconds:.0f} s on {os.cpu_count()} cores: ranking {best:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in took)}), {best / len(candidates):.3f} s per candidate (target 1 s)")
    scores = {s.candidate_id: {"qmax": s.qmax, "aligned_share": s.aligned_share,
                               "wpd": s.fluency.wpd if s.fluency else None} for s in ranking.scores}
    worst = 0.0
    if args.compare:
        before = json.loads(args.compare.read_text())["candidates"]
        for name, now in sorted(scores.items()):
            was = before.get(name, {}).get("qmax")
            if was is None:
                print(f"  {name:36s} Qmax {now['qmax']:.4f} (not in {args.compare.name})")
                continue
            change = abs(now["qmax"] - was) / was if was else 0.0
            worst = max(worst, change)
            print(f"  {name:36s} Qmax {was:.4f} -> {now['qmax']:.4f} ({100 * change:.3f} %)")
        print(f"largest Qmax change: {100 * worst:.3f} % (at most {100 * QMAX_TOLERANCE:.0f} %)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cores": os.cpu_count(), "seconds": args.seconds, "candidates_count": len(candidates),
                                         "rank_s": best, "s_per_candidate": best / len(candidates),
                                         "candidates": scores}, indent=1) + "\n")
    return 1 if worst > QMAX_TOLERANCE else 0


if __name__ == "__main__":
    sys.exit(main())
