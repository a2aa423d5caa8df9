"""What Prefect costs per song: each cover_song run's wall time minus the time its stages took.

A dry-run nightly over a folder of short clips cut from real recordings (Debian's planetblupi
music), then, per song, the flow run's start-to-end time from the Prefect API against the sum of
the stage times the ledger kept. The rest is orchestration: task and subflow runs, state
updates, artifacts, the publishing pass and the gallery.

    python bench/prefect_overhead.py [--songs 10] [--seconds 10] [--json out/bench/prefect.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

MUSIC = Path("/usr/share/planetblupi/music")


def cut(source: Path, start: float, seconds: float, target: Path) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(source),
                    "-c:a", "libvorbis", "-q:a", "5", str(target)], check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from covermill.flows.offline import apply_offline_defaults

    apply_offline_defaults()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from covermill.flows.config import CovermillConfig
    from covermill.flows.nightly import nightly
    from covermill.tasks.core.layout import ledger_path
    from covermill.tasks.core.ledger import Ledger

    recordings = sorted(MUSIC.glob("music*.ogg"))[: args.songs]
    with tempfile.TemporaryDirectory(prefix="covermill-bench-prefect-") as scratch:
        playlist = Path(scratch) / "playlist"
        playlist.mkdir()
        for recording in recordings:
            cut(recording, 30.0, args.seconds, playlist / recording.name)
        out = Path(scratch) / "out"
        config = CovermillConfig()
        started = time.perf_counter()
        summary = nightly(playlist=str(playlist), out_dir=str(out), config=config, dry_run=True)
        night_s = time.perf_counter() - started
        ledger = Ledger(ledger_path(out))
        by_source = {song.source: song for song in ledger.songs()}
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["cover_song"])))
        rows = []
        for run in runs:
            song = by_source.get(run.parameters.get("source"))
            if song is None or run.start_time is None or run.end_time is None:
                continue
            wall = (run.end_time - run.start_time).total_seconds()
            stages = sum(ledger.stage_seconds(song.id).values())
            rows.append({"song": song.title, "wall_s": round(wall, 2), "stages_s": round(stages, 2),
                         "overhead_s": round(wall - stages, 2)})

    overheads = [r["overhead_s"] for r in rows]
    figures = {
        "songs": len(rows), "clip_seconds": args.seconds, "done": len(summary.done), "night_s": round(night_s, 1),
        "overhead_mean_s": round(statistics.mean(overheads), 2), "overhead_median_s": round(statistics.median(overheads), 2),
        "overhead_share": round(sum(overheads) / sum(r["wall_s"] for r in rows), 3),
        "night_outside_songs_s": round(night_s - sum(r["wall_s"] for r in rows), 1), "rows": rows,
    }
    print(f"{len(rows)} songs of {args.seconds:g} s, dry run; the whole night {night_s:.1f} s")
    print(f"{'song':12s} {'flow run':>9s} {'stages':>8s} {'Prefect':>8s}")
    for row in rows:
        print(f"{row['song']:12s} {row['wall_s']:8.2f}s {row['stages_s']:7.2f}s {row['overhead_s']:7.2f}s")
    print(f"overhead per song: mean {figures['overhead_mean_s']} s, median {figures['overhead_median_s']} s "
          f"({100 * figures['overhead_share']:.1f}% of the song runs' time)")
    print(f"the night outside the song runs (playlist, publishing pass, gallery, server start): {figures['night_outside_songs_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
