"""How soon `covermill run` gets to work: with covermill's local Prefect server up (`covermill
server start`) and with Prefect's temporary server (none configured).

A 10 s clip of a real recording (Debian's planetblupi music), basic-pitch only, one seed, the still
video: a first run, then re-runs of the finished song (every stage skipped). For each run, seconds
from starting the command to the line saying which server it uses, to its first stage line (the
download task, or a stage "already done"), and to its end. Both modes share one PREFECT_HOME (the
server's start runs the database's migrations, so neither mode pays them in a run).

    python bench/cli_start.py [--repeats 3] [--port 0] [--json out/bench/cli_start.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MUSIC = Path("/usr/share/planetblupi/music")
COVERMILL = str(Path(sys.executable).with_name("covermill"))
SERVER_LINE = re.compile(r"^(using the|starting a temporary|the local Prefect server)")
STAGE_LINE = re.compile(r"Task run '|: already done, skipped")
FAST_CONFIG = "generate: {generators: [basic-pitch]}\narrange: {seeds: [0]}\nvideo: {style: still}\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed_run(arguments: list[str], env: dict[str, str]) -> dict[str, float | None]:
    """Seconds from starting `covermill ARGUMENTS` to its server line, its first stage line, and its end."""
    began = time.monotonic()
    process = subprocess.Popen([COVERMILL, *arguments], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server_s = stage_s = None
    lines = []
    for line in process.stdout:
        now = time.monotonic() - began
        lines.append(line)
        if server_s is None and SERVER_LINE.search(line):
            server_s = now
        if stage_s is None and STAGE_LINE.search(line):
            stage_s = now
    if process.wait() != 0:
        raise SystemExit(f"covermill {' '.join(arguments)} failed:\n{''.join(lines[-30:])}")
    return {"server_line_s": server_s, "first_stage_s": stage_s, "wall_s": time.monotonic() - began}


def measure(mode: str, clip: Path, config: Path, out: Path, env: dict[str, str], repeats: int) -> dict:
    arguments = ["run", str(clip), "--out", str(out), "--config", str(config), "--dry-run"]
    first = timed_run(arguments, env)
    again = [timed_run(arguments, env) for _ in range(repeats)]
    return {"mode": mode, "first_run": first, "re_runs": again,
            "re_run_first_stage_median_s": statistics.median(r["first_stage_s"] for r in again),
            "re_run_wall_median_s": statistics.median(r["wall_s"] for r in again)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="re-runs of the finished song per mode")
    parser.add_argument("--port", type=int, default=0, help="the local server's port (0: a free one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="covermill-bench-cli-") as scratch:
        root = Path(scratch)
        clip = root / "clip.ogg"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "20", "-t", "10", "-i", str(MUSIC / "music004.ogg"),
                        "-c:a", "libvorbis", "-q:a", "5", str(clip)], check=True)
        config = root / "config.yaml"
        config.write_text(FAST_CONFIG)
        # unbuffered: each line is timed when written, not when a pipe's buffer fills
        env = {**os.environ, "PREFECT_HOME": str(root / "prefect"), "PYTHONUNBUFFERED": "1"}
        env.pop("PREFECT_API_URL", None)
        port = args.port or free_port()

        began = time.monotonic()
        subprocess.run([COVERMILL, "server", "start", "--port", str(port)], env=env, check=True, stdout=subprocess.DEVNULL)
        server_start_s = time.monotonic() - began
        try:
            local = measure("local server", clip, config, root / "out-local", env, args.repeats)
        finally:
            subprocess.run([COVERMILL, "server", "stop"], env=env, check=True, stdout=subprocess.DEVNULL)
        temporary = measure("temporary server", clip, config, root / "out-temporary", env, args.repeats)

    print(f"`covermill server start`: {server_start_s:.1f} s (a fresh PREFECT_HOME: the database is made)")
    print(f"{'mode':17s} {'run':10s} {'server line':>12s} {'first stage':>12s} {'wall':>8s}")
    for result in (local, temporary):
        for name, run in [("first", result["first_run"])] + [(f"re-run {n}", r) for n, r in enumerate(result["re_runs"], 1)]:
            print(f"{result['mode']:17s} {name:10s} {run['server_line_s']:11.2f}s {run['first_stage_s']:11.2f}s {run['wall_s']:7.2f}s")
    for result in (local, temporary):
        print(f"{result['mode']}: re-run of a finished song, median first stage {result['re_run_first_stage_median_s']:.2f} s, "
              f"median wall {result['re_run_wall_median_s']:.2f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"server_start_s": server_start_s, "repeats": args.repeats,
                                         "local": local, "temporary": temporary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
