"""Beyond one machine, on Prefect itself: `covermill deploy` puts the deployments on a process work
pool, two real workers (`covermill worker`, Prefect's process worker, limit 1 each) pull from it,
and a fanned-out nightly run over a playlist ends with every song done exactly once and runs taken
by both workers."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from covermill.tasks.arrange.styles import DEFAULT_STYLES
from covermill.tasks.core.layout import ledger_path
from covermill.tasks.core.ledger import Ledger

from conftest import MUSIC_DIR, cut_clip
from helpers import prefect_http, stop

pytestmark = pytest.mark.server

COVERMILL = str(Path(sys.executable).with_name("covermill"))
POOL = "covermill-test-pool"
RECORDINGS = ("music001", "music004")  # two songs, two workers of limit 1: each takes one


@pytest.fixture(scope="module")
def fanned_out(prefect_api, tmp_path_factory):
    api, env = prefect_api
    root = tmp_path_factory.mktemp("workers")
    clips = [cut_clip(MUSIC_DIR / f"{name}.ogg", 30.0, 10.0, root / f"{name}.ogg") for name in RECORDINGS]
    playlist = root / "tonight.txt"
    playlist.write_text("".join(f"{clip.name}\n" for clip in clips))
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "arrange": {"styles": {name: DEFAULT_STYLES[name] for name in ("two-hands", "block-chords")}, "seeds": [0]},
        "nightly": {"fan_out": True, "max_minutes": 15},
        "gpu": {"limit": None},  # no torch model runs here; the slot is tested elsewhere
        "run_form": {"source_folders": [str(root)]},  # the fanned-out song runs read the playlist's files
    }))
    out = root / "out"
    deployed = subprocess.run([COVERMILL, "deploy", "--pool", POOL, "--out", str(out), "--config", str(config)],
                              env=env, capture_output=True, text=True, cwd=root)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"start a worker on each machine: covermill worker --pool {POOL} --config {config}" in deployed.stdout
    logs = [root / f"worker-{n}.log" for n in (1, 2)]
    workers = []
    for number, log in enumerate(logs, 1):
        with open(log, "w") as sink:
            workers.append(subprocess.Popen([COVERMILL, "worker", "--pool", POOL, "--limit", "1", "--name", f"worker-{number}"],
                                            env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=root))
    try:
        deadline = time.monotonic() + 90
        while not all("started" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "workers did not start: " + " | ".join(log.read_text()[-1000:] for log in logs)
            time.sleep(1)
        night = subprocess.run([COVERMILL, "nightly", str(playlist), "--out", str(out), "--config", str(config)],
                               env=env, capture_output=True, text=True, cwd=root, timeout=900)
        yield api, out, clips, night, [log.read_text() for log in logs]
    finally:
        stop(*workers)


def test_deploy_puts_both_deployments_on_the_pool(fanned_out):
    api = fanned_out[0]
    for name in ("covermill-song/cover-song", "covermill-nightly/nightly"):
        with prefect_http(api) as client:
            deployment = client.get(f"/deployments/name/{name}").json()
        assert deployment["work_pool_name"] == POOL
        assert deployment["entrypoint"].startswith("covermill.flows.deployments.")


def test_every_song_is_done_exactly_once_by_the_two_workers(fanned_out):
    api, out, clips, night, worker_logs = fanned_out
    assert night.returncode == 0, night.stdout + night.stderr
    assert f"{len(clips)} done, 0 rejected, 0 failed" in night.stdout
    ledger = Ledger(ledger_path(out))
    songs = ledger.songs()
    assert sorted(Path(s.source).name for s in songs) == sorted(c.name for c in clips)  # one song row each
    assert all(ledger.is_done(s.id, "video") for s in songs)
    with prefect_http(api) as client:
        deployment = client.get("/deployments/name/covermill-song/cover-song").json()
        runs = client.post("/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}).json()
    runs = [r for r in runs if r["parameters"]["source"] in {str(c.resolve()) for c in clips}]  # not other tests' runs
    assert sorted(Path(r["parameters"]["source"]).name for r in runs) == sorted(c.name for c in clips)  # one run each
    assert {r["state_type"] for r in runs} == {"COMPLETED"}
    taken = [set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", log)) & {r["id"] for r in runs}
             for log in worker_logs]
    assert all(taken), "each worker ran at least one song"
    assert not taken[0] & taken[1], "no run was taken by both"
