"""End-to-end bench: one song through the real cover_song flow (dry run), figures per stage.

Prints wall seconds per stage (from the ledger), total wall time and its ratio to the song's
length, ranking seconds per candidate, and peak RSS. Targets (issue 3, 2 CPU cores, 4-minute
song): basic-pitch only <= 0.3x the song's length, with transkun <= 1.2x, peak RSS <= 3 GB,
ranking <= 1 s per candidate.

    python bench/e2e.py [SONG] [--generators basic-pitch,transkun] [--config FILE] [--out DIR]

`make bench` fetches a default song offline (4 minutes cut from Debian's planetblupi-music-ogg).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()


DEFAULT_SONG = Path(".cache/bench/planetblupi-music004-240s.ogg")


class PeakRss:
    """Samples this process's RSS (VmRSS) and its children's (ru_maxrss) during the run."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss_kb(self) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._rss_kb())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, nargs="?", default=DEFAULT_SONG,
                        help=f"an audio file, a full-length song (default: {DEFAULT_SONG}, which `make bench` cuts)")
    parser.add_argument("--generators", default="basic-pitch", help="comma-separated generators (default: basic-pitch)")
    parser.add_argument("--config", type=Path, default=None, help="settings file (default: ./config.yaml if present)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a fresh temporary one)")
    args = parser.parse_args()
    if not args.song.is_file():
        parser.error(f"{args.song}: no such file; give a song, or run `make bench` to cut the default one offline")

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="covermill-bench-prefect-"))
    from prefect.testing.utilities import prefect_test_harness

    from covermill.flows.config import load_config
    from covermill.flows.cover_song import cover_song
    from covermill.tasks.core.audio import probe
    from covermill.tasks.core.layout import ledger_path
    from covermill.tasks.core.ledger import Ledger

    config = load_config(args.config)
    config = config.model_copy(update={"generate": config.generate.model_copy(update={"generators": args.generators.split(",")})})
    out = args.out or Path(tempfile.mkdtemp(prefix="covermill-bench-"))
    length = probe(args.song).duration

    with prefect_test_harness(server_startup_timeout=90):  # the server's start-up is not the song's cost
        with PeakRss() as rss:
            started = time.perf_counter()
            result = cover_song(source=str(args.song), out_dir=str(out), config=config, dry_run=True)
            total = time.perf_counter() - started
        children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    seconds = Ledger(ledger_path(out)).stage_seconds(result.song_id)
    print(f"song: {args.song} ({length:.1f} s), generators: {args.generators}, {os.cpu_count()} CPUs")
    print(f"{'stage':<12}{'seconds':>10}{'x song':>10}")
    for stage, took in seconds.items():
        print(f"{stage:<12}{took:>10.2f}{took / length:>10.3f}")
    print(f"{'total wall':<12}{total:>10.2f}{total / length:>10.3f}   (flow call, Prefect overhead included)")
    print(f"ranking per candidate: {seconds.get('rank', float('nan')) / result.candidates:.2f} s ({result.candidates} candidates)")
    print(f"peak RSS: {rss.peak_kb / 1024:.0f} MB in this process; largest child process (ffmpeg, server): {children_kb / 1024:.0f} MB")
    print(f"outputs: {result.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
