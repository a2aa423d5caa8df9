"""How fast Pop2Piano writes covers: seconds per candidate and per song-minute, batch size, memory.

The real checkpoint cannot be downloaded here, so by default the bench builds a randomly
initialised Pop2Piano of the published size (d_model 512, 6 layers, 8 heads, vocab 2400: 59 M
parameters) and loads it through the same from_pretrained code as the real one. Random weights
never write the end-of-segment token, so every segment runs to --max-new-tokens: the figures are
an upper bound for the real model, which stops sooner.

    python bench/generate.py SONG [--seconds 60] [--arrangers all] [--seeds 0,1] [--device auto]
    python bench/generate.py SONG --model /path/to/pop2piano      # real weights, when you have them

Prints one block of figures; `--json FILE` also writes them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from random_pop2piano import save_random_pop2piano  # noqa: E402


def cut(song: Path, seconds: float, folder: Path) -> Path:
    """The first `seconds` of the song as the 44.1 kHz WAV the generate stage reads."""
    target = folder / "song.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(song), "-ar", "44100", str(target)], check=True)
    return target


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    parser.add_argument("--baseline", action="store_true",
                        help="also time transformers' own Pop2Piano generate (one arranger per call, greedy) on the song")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import torch

    from covermill.models import pop2piano

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        audio = cut(args.song, args.seconds, scratch)
        model = args.model or str(save_random_pop2piano(scratch / "model", args.size))
        options = {"model": model, "arrangers": args.arrangers, "seeds": [int(s) for s in args.seeds.split(",")],
                   "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "device": args.device,
                   "dtype": args.dtype}
        started = time.perf_counter()
        generator = pop2piano.load(options)
        load_s = time.perf_counter() - started
        parameters = sum(p.numel() for p in generator.model.parameters())
        if generator.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        covers = generator.cover(audio, progress=lambda message: print(message, file=sys.stderr, flush=True))
        total_s = time.perf_counter() - started
        baseline_s = None
        if args.baseline:  # the usual way: Pop2PianoForConditionalGeneration.generate, one composer per call
            features = generator.song_features(audio).features["input_features"].to(generator.device, generator.model.dtype)
            started = time.perf_counter()
            with torch.no_grad():
                generator.model.generate(input_features=features, composer="composer1", max_new_tokens=args.max_new_tokens)
            baseline_s = time.perf_counter() - started

    run = generator.last_run
    minutes = run["seconds"] / 60
    figures = {
        "device": generator.device if not generator.device.startswith("cuda") else torch.cuda.get_device_name(),
        "dtype": generator.dtype,
        "threads": torch.get_num_threads(),
        "model": "random, " + args.size if not args.model else args.model,
        "parameters_m": round(parameters / 1e6, 1),
        "song_seconds": round(run["seconds"], 1),
        "covers": len(covers),
        "segments": run["segments"],
        "sequences": run["sequences"],
        "batch_size": run["batch_size"],
        "max_new_tokens": args.max_new_tokens,
        "load_s": round(load_s, 2),
        "features_s": round(run["features_s"], 2),
        "generate_s": round(run["generate_s"], 2),
        "decode_s": round(run["decode_s"], 2),
        "total_s": round(total_s, 2),
        "s_per_candidate": round(total_s / len(covers), 3),
        "s_per_song_minute": round(total_s / minutes, 2),
        "s_per_candidate_minute": round(total_s / len(covers) / minutes, 3),
        "baseline_generate_one_arranger_s": None if baseline_s is None else round(baseline_s, 2),
        "baseline_s_per_arranger_minute": None if baseline_s is None else round(baseline_s / minutes, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if generator.device.startswith("cuda") else None,
        "notes_per_cover": round(sum(len(n) for n in covers.values()) / len(covers)),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
