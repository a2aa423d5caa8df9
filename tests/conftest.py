"""Shared test data: short clips cut from real recordings (Debian's planetblupi-music-ogg); the
Prefect servers the tests use; the markers that keep the quick loop quick (`make check`)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import covermill.tasks.media  # noqa: F401 (ImageMagick's policy is set before any test module loads Wand, as in covermill)

# Prefect must never reach out or reuse a developer's server from a test.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT", "false")
os.environ.setdefault("PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY", "false")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# A home of the run's own, removed when the run ends; under pytest-xdist one per worker (a worker
# inherits the home its controller made: two workers' local-server records must not meet).
if "PREFECT_HOME" not in os.environ or os.environ["PREFECT_HOME"] == os.environ.get("COVERMILL_TEST_PREFECT_HOME"):
    os.environ["PREFECT_HOME"] = os.environ["COVERMILL_TEST_PREFECT_HOME"] = tempfile.mkdtemp(prefix="covermill-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.pop("PREFECT_API_URL", None)

MUSIC_DIR = Path(os.environ.get("COVERMILL_TEST_MUSIC", "/usr/share/planetblupi/music"))
# bench/'s random-model builders (random_pop2piano, random_stable_diffusion) make the tests' tiny models
BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

SERVER_FIXTURES = {"prefect_server", "prefect_api"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """A safety net under the modules' own marks: a test that uses a Prefect server fixture (itself
    or through another fixture) is `server`. (A browser test that lacks its mark fails in `make
    check` instead: tests/browser.py refuses to start Chromium there.)"""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("server"):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session", autouse=True)
def _away_from_the_users_config(tmp_path_factory):
    """Run every test from an empty folder: `load_config(None)`, the CLI without --config and the
    processes tests start read ./config.yaml when it exists, and a user's edited copy must neither
    break nor change a test. Tests give their settings with --config, or get the models' defaults."""
    before = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(before)

# (recording, start second): stretches with the full band playing, checked by ear and by level.
CLIPS = {
    "song_a": ("music004", 20.0),
    "song_b": ("music007", 20.0),
    "song_c": ("music009", 20.0),
}
CLIP_SECONDS = 25.0


def cut_clip(source: Path, start: float, seconds: float, target: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds),
         "-i", str(source), "-c:a", "libvorbis", "-q:a", "5", str(target)],
        check=True,
    )
    return target


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """name -> a 25 s OGG clip of a real recording (song_a, song_b and song_c are different songs)."""
    if not (MUSIC_DIR / "music004.ogg").exists():
        pytest.fail("test music missing: install Debian's planetblupi-music-ogg (make test does) or set COVERMILL_TEST_MUSIC")
    folder = tmp_path_factory.mktemp("clips")
    return {
        name: cut_clip(MUSIC_DIR / f"{recording}.ogg", start, CLIP_SECONDS, folder / f"{name}.ogg")
        for name, (recording, start) in CLIPS.items()
    }


@pytest.fixture(scope="session")
def short_clips(tmp_path_factory) -> dict[str, Path]:
    """name -> a 10 s OGG clip (the same songs and starts as `clips`): for tests about orchestration,
    where the music only has to be real, not long."""
    folder = tmp_path_factory.mktemp("short-clips")
    return {
        name: cut_clip(MUSIC_DIR / f"{recording}.ogg", start, 10.0, folder / f"{name}.ogg")
        for name, (recording, start) in CLIPS.items()
    }


@pytest.fixture(scope="session")
def reference_midis() -> dict[str, Path]:
    """name -> the full MIDI score of the recording each clip was cut from."""
    return {name: MUSIC_DIR / f"{recording}.mid" for name, (recording, _) in CLIPS.items()}


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server for the whole session (~8 s to start), for tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def real_video(clips, tmp_path_factory) -> tuple[Path, Path]:
    """(video.mp4, thumbnail.jpg): a real H.264/AAC video of a 25 s clip over a 1280x720 picture."""
    from covermill.tasks.media.video import make_still_video

    folder = tmp_path_factory.mktemp("real-video")
    thumbnail = folder / "thumbnail.jpg"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720",
                    "-frames:v", "1", str(thumbnail)], check=True)
    return make_still_video(thumbnail, clips["song_a"], folder / "video.mp4"), thumbnail


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1 (UI included), for tests about deployments,
    schedules and workers: yields (api_url, env for child processes that should use it)."""
    import httpx

    from helpers import stop

    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_UI_API_URL": api,
           # the scheduler makes a new schedule's runs within seconds instead of a minute
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "PREFECT_RUNNER_POLL_FREQUENCY": "2",
           # expired concurrency leases (a killed holder's slot) are taken back within seconds
           "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2"}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:  # a readiness probe with its own loop; tests talk to the API with helpers.prefect_http
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield api, {**env, "PREFECT_API_URL": api}
    finally:
        stop(server)
        log.close()


# --- tiny random Pop2Piano weights (bench/random_pop2piano.py), for the model's and the stage's tests

FEW_TOKENS = 48  # random weights never stop on their own: keep every segment short


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A Pop2Piano checkpoint of the real layout, randomly initialised, saved with save_pretrained."""
    from random_pop2piano import save_random_pop2piano

    return save_random_pop2piano(tmp_path_factory.mktemp("pop2piano") / "tiny")


@pytest.fixture(scope="session")
def wavs(clips, tmp_path_factory) -> dict[str, Path]:
    """name -> the `clips` decoded to 44.1 kHz WAV, as the generate stage reads songs."""
    from covermill.tasks.core.audio import decode_to_wav

    folder = tmp_path_factory.mktemp("wav")
    return {name: decode_to_wav(clip, folder / f"{name}.wav") for name, clip in clips.items()}

