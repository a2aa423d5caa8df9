"""How fast Pop2Piano writes covers: seconds per candidate and per song-minute, batch size, memory.

The real checkpoint cannot be downloaded here, so by default the bench builds a randomly
initialised Pop2Piano of the published size (d_model 512, 6 layers, 8 heads, vocab 2400: 59 M
parameters) and loads it through the same from_pretrained code as the real one. Random weights
never write the end-of-segment token, so every segment runs to --max-new-tokens: the figures are
an upper bound for the real model, which stops sooner.

    python bench/generate.py SONG [--seconds 60] [--arrangers all] [--seeds 0,1] [--device auto]
    python bench/generate.py SONG --model /path/to/pop2piano      # real weights, when you have them
    python bench/generate.py SONG --songs 2                       # the first song of a process, then the next

`--songs N` makes the covers of the song N times in one process, as a nightly run or a worker
does for its songs: the first pays loading the model and its warm-up, the next ones do not.
Each song's beats and features are prefetched in the worker process as the pipeline does them
(the first song's while the model loads, each next song's while the one before it generates);
`--no-prefetch` computes them in place, to see what the overlap saves.
Prints the figures of the first song and of the next ones (their mean) side by side; `--json
FILE` also writes them, each song's apart under "songs".
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from random_pop2piano import save_random_pop2piano  # noqa: E402

RATE = 44100  # what the generate stage's WAVs have


def cut(song: Path, seconds: float, folder: Path) -> Path:
    """The first `seconds` of the song as the 44.1 kHz WAV the generate stage reads."""
    target = folder / "song.wav"
    if shutil.which("ffmpeg") is None:  # the bare GPU machines have none (../shared/gpu-notes.md)
        return cut_with_soundfile(song, seconds, target)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(song), "-ar", str(RATE), str(target)], check=True)
    return target


def cut_with_soundfile(song: Path, seconds: float, target: Path) -> Path:
    """The same cut with soundfile (libsndfile reads WAV, FLAC, Ogg Vorbis and MP3) and soxr."""
    import soundfile

    from covermill.models.audio import resample

    with soundfile.SoundFile(str(song)) as source:
        rate = source.samplerate
        samples = source.read(int(seconds * rate), dtype="float32", always_2d=True)
    soundfile.write(str(target), resample(samples, rate, RATE, quality="VHQ"), RATE)
    return target


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# A song's figures, apart for each song of the process (the rest are the same for every song)
PER_SONG = ("load_s", "warmup_s", "features_s", "features_prefetched", "generate_s", "decode_s", "total_s", "s_per_candidate",
            "s_per_song_minute", "s_per_candidate_minute", "calls", "batch_size", "free_gb", "row_mb", "peak_gpu_mb")


def mean_figures(songs: list[dict]) -> dict | None:
    """The next songs' figures: their mean (None with one song)."""
    if not songs:
        return None

    def mean(key: str) -> object:
        values = [song[key] for song in songs]
        if values[0] is None or isinstance(values[0], bool):  # a yes or no holds when it holds for every song
            return None if values[0] is None else all(values)
        return round(sum(values) / len(values), 4)

    return {key: mean(key) for key in songs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, help="an audio file (the bench uses its first --seconds)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", help="a Pop2Piano folder or hub id (default: random weights of the real size)")
    parser.add_argument("--size", choices=["real", "tiny"], default="real", help="size of the random model")
    parser.add_argument("--arrangers", default="all")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--batch-size", type=int, default=0, help="sequences per generate call, halved on OOM (0: per device)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--songs", type=int, default=1, help="covers of the song made this many times in one process")
    parser.add_argument("--no-warm-up", action="store_true", help="load the model without its warm-up (to see what it saves)")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="compute each song's beats and features in place, not in the worker ahead of it")
    parser.add_argument("--baseline", action="store_true",
                        help="also time transformers' own Pop2Piano generate (one arranger per call, greedy) on the song")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.songs < 1:
        parser.error("--songs must be 1 or more")

    import torch

    from covermill.models import pop2piano
    from covermill.models.device import resolve_device

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        audio = cut(args.song, args.seconds, scratch)
        # one file per song: prefetched features belong to a file, as each song of a nightly has its own
        songs_audio = [audio] + [Path(shutil.copy(audio, scratch / f"song{n}.wav")) for n in range(2, args.songs + 1)]
        prefetch = not args.no_prefetch
        model = args.model or str(save_random_pop2piano(scratch / "model", args.size))
        options = pop2piano.Options(model=model, arrangers=args.arrangers, seeds=[int(s) for s in args.seeds.split(",")],
                                    batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, device=args.device,
                                    dtype=args.dtype)
        cuda = resolve_device(args.device).startswith("cuda")
        songs, first_covers, same_notes = [], None, True
        if prefetch:  # the generate stage asks for them before its models load
            pop2piano.prefetch(options, songs_audio[0])
        for number in range(1, args.songs + 1):
            print(f"song {number} of {args.songs}", file=sys.stderr, flush=True)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            # as the generate stage does for every song: load (cached after the first), then cover
            started = time.perf_counter()
            generator = pop2piano.Pop2PianoGenerator(options, warm_up=not args.no_warm_up)
            load_s = time.perf_counter() - started
            if prefetch and number < args.songs:  # the nightly asks for the next song's as this one starts
                pop2piano.prefetch(options, songs_audio[number])
            covers = generator.cover(songs_audio[number - 1], progress=lambda message: print(message, file=sys.stderr, flush=True))
            total_s = time.perf_counter() - started
            first_covers = first_covers or covers
            same_notes = same_notes and covers == first_covers  # seeded per row: every song the same notes
            run = generator.last_run
            minutes = run["seconds"] / 60
            songs.append({
                "load_s": round(load_s, 4),
                "warmup_s": round(generator.warmup_s, 4),
                "features_s": round(run["features_s"], 4),
                "features_prefetched": run["features_prefetched"],
                "generate_s": round(run["generate_s"], 4),
                "decode_s": round(run["decode_s"], 4),
                "total_s": round(total_s, 4),
                "s_per_candidate": round(total_s / len(covers), 3),
                "s_per_song_minute": round(total_s / minutes, 2),
                "s_per_candidate_minute": round(total_s / len(covers) / minutes, 3),
                "calls": run["calls"],
                "batch_size": run["batch_size"],
                "free_gb": round(run["free_gb"], 1) if "free_gb" in run else None,
                "row_mb": round(run["row_mb"], 2) if "row_mb" in run else None,
                "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
            })
        parameters = sum(p.numel() for p in generator.model.parameters())
        baseline_s = None
        if args.baseline:  # the usual way: Pop2PianoForConditionalGeneration.generate, one composer per call
            features = generator.song_features(audio).features["input_features"].to(generator.device, generator.model.dtype)
            started = time.perf_counter()
            with torch.no_grad():
                generator.model.generate(input_features=features, composer="composer1", max_new_tokens=args.max_new_tokens)
            baseline_s = time.perf_counter() - started

    figures = {
        "device": generator.device if not cuda else torch.cuda.get_device_name(),
        "dtype": generator.dtype,
        "threads": torch.get_num_threads(),
        "model": "random, " + args.size if not args.model else args.model,
        "parameters_m": round(parameters / 1e6, 1),
        "song_seconds": round(run["seconds"], 1),
        "covers": len(covers),
        "segments": run["segments"],
        "sequences": run["sequences"],
        "max_new_tokens": args.max_new_tokens,
        "warm_up": not args.no_warm_up,
        "prefetch": prefetch,
        "songs_run": len(songs),
        "same_notes_every_song": same_notes,
        "baseline_generate_one_arranger_s": None if baseline_s is None else round(baseline_s, 2),
        "baseline_s_per_arranger_minute": None if baseline_s is None else round(baseline_s / minutes, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "notes_per_cover": round(sum(len(n) for n in covers.values()) / len(covers)),
    }
    first, following = songs[0], mean_figures(songs[1:])
    width = max(len(k) for k in (*figures, *PER_SONG))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(f"{'':<{width}}  {'first song':>12}  {'next songs' if following else '':>12}")
    for key in PER_SONG:
        print(f"{key:<{width}}  {first[key]!s:>12}  {'' if following is None else following[key]!s:>12}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "first": first, "next": following, "songs": songs}, indent=2))


if __name__ == "__main__":
    main()
