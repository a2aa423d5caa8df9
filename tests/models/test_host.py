"""The model host (models/host.py): a real host process serves the tiny random Pop2Piano and basic-pitch
to runs in other processes; it loads and warms a model once for all of them, their notes are the
in-process notes bit for bit, a model's errors arrive as themselves, and a run whose host is gone
makes its song in-process with one warning."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from covermill.models import host, pop2piano_features
from covermill.models.errors import ModelMissing, SongNotSupported
from covermill.models.generator import Variant, load_generator, prefetch
from covermill.models.pop2piano import Pop2PianoGenerator
from covermill.tasks.core.audio import decode_to_wav

from conftest import FEW_TOKENS

# A run's process as Prefect starts one under `covermill serve`: fresh, the host named in its environment.
RUN = """
import json, sys
from covermill.models.generator import load_generator
generator = load_generator("pop2piano", json.loads(sys.argv[1]))
lines = []
covers = generator.cover(sys.argv[2], generator.variants(), progress=lines.append)
print(json.dumps({"kind": type(generator).__name__, "progress": lines,
                  "covers": [[list(variant), [list(note) for note in notes]] for variant, notes in covers.items()]}))
"""


@pytest.fixture(scope="module")
def songs(short_clips, tmp_path_factory) -> dict[str, Path]:
    """10 s WAVs, as the generate stage reads songs."""
    folder = tmp_path_factory.mktemp("host-wav")
    return {name: decode_to_wav(clip, folder / f"{name}.wav") for name, clip in short_clips.items()}


@pytest.fixture(scope="module")
def model(tiny_model, tmp_path_factory) -> Path:
    """The tiny Pop2Piano under a path no other test loads, so the host's load and warm-up counts are this module's."""
    return Path(shutil.copytree(tiny_model, tmp_path_factory.mktemp("host-model") / "tiny"))


def start_host() -> tuple[host.RunningHost, Path]:
    folder = Path(tempfile.mkdtemp(prefix="covermill-test-host-"))  # short: a Unix socket path has 107 bytes
    return host.start(str(folder / "socket")), folder


@pytest.fixture(scope="module")
def running():
    started, folder = start_host()
    yield started
    started.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def use_host(monkeypatch):
    """Make this test process a run that the environment sends to a host (a RunningHost's, or any
    address and key), asked afresh."""
    def named(environment: dict[str, str]) -> None:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        host._hosts.clear()

    yield named
    host._hosts.clear()  # the next test's process asks (and finds none) again


def options(model: Path, **more) -> dict:
    return {"model": str(model), "max_new_tokens": FEW_TOKENS, "arrangers": "1,2", "seeds": [0], **more}


def as_lists(covers: dict) -> list:
    return [[list(variant), [list(note) for note in notes]] for variant, notes in covers.items()]


def test_two_runs_share_one_load_and_warm_up_and_get_the_in_process_notes(running, model, songs):
    before = running.client.call("ping")
    environment = {**os.environ, **running.environment}
    asked = json.dumps(options(model))
    runs = [subprocess.run([sys.executable, "-c", RUN, asked, str(songs["song_b"])], env=environment,
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    first, second = (json.loads(r.stdout) for r in runs)

    after = running.client.call("ping")
    assert after["pid"] == running.process.pid != os.getpid()
    assert (after["loads"] - before["loads"], after["warmups"] - before["warmups"]) == (1, 1)  # once, for both runs
    assert after["loaded"].count("pop2piano") == before["loaded"].count("pop2piano") + 1
    assert first["kind"] == second["kind"] == "HostedGenerator"
    assert "Warning" not in runs[0].stderr + runs[1].stderr and "did not answer" not in runs[0].stderr + runs[1].stderr

    here = load_generator("pop2piano", options(model))  # no host named: this process loads its own
    assert isinstance(here, Pop2PianoGenerator)
    expected = as_lists(here.cover(songs["song_b"], here.variants()))
    assert first["covers"] == second["covers"] == expected  # bit for bit, through pickling and JSON
    assert [variant for variant, _ in expected] == [[1, 0], [2, 0]] and all(notes for _, notes in expected)

    # the model's progress lines reach the run as they happen, before its result
    sequences = here.last_run["sequences"]
    for run in (first, second):
        assert run["progress"][0].startswith(f"pop2piano: 2 covers x {here.last_run['segments']} segments")
        assert run["progress"][-1] == f"pop2piano: {sequences}/{sequences} sequences generated"


def test_a_transcriber_runs_in_the_host_and_a_covers_slot_is_held_here_around_the_call(running, model, songs, use_host):
    use_host(running.environment)
    transcriber = load_generator("basic-pitch")
    assert isinstance(transcriber, host.HostedGenerator) and transcriber.holds_gpu_slot is False  # ONNX on the CPU
    assert "basic-pitch" in running.client.call("ping")["loaded"]
    notes = transcriber.transcribe(songs["song_a"])
    host._hosts[:] = [None]  # the same process without its host: the in-process transcription
    assert notes == load_generator("basic-pitch").transcribe(songs["song_a"]) and len(notes) > 20

    # a cover's calls run inside the caller's hold(), taken here around the forwarded call
    use_host(running.environment)
    held: list[str] = []

    class Hold:
        def __enter__(self):
            held.append("enter")

        def __exit__(self, *exc):
            held.append("exit")

    cover_model = load_generator("pop2piano", options(model, arrangers="3"))
    covers = cover_model.cover(songs["song_c"], [Variant(3, 0)], hold=Hold, progress=lambda line: held.append("progress"))
    assert held[0] == "enter" and held[-1] == "exit" and held.count("enter") == 1
    assert set(held[1:-1]) == {"progress"}  # every line the model reported came while the slot was held
    assert list(covers) == [Variant(3, 0)] and covers[Variant(3, 0)]


def test_a_prefetch_starts_in_the_host(running, model, songs, use_host):
    use_host(running.environment)
    asked = options(model, arrangers="4")
    key = pop2piano_features.features_key(songs["song_a"], str(model), None, 2, 900.0)
    assert prefetch("pop2piano", asked, songs["song_a"]) is True
    assert key not in pop2piano_features._pending  # not in this process's worker: the host's generator takes it
    covers = load_generator("pop2piano", asked).cover(songs["song_a"], [Variant(4, 0)])
    host._hosts[:] = [None]
    assert covers == load_generator("pop2piano", asked).cover(songs["song_a"], [Variant(4, 0)])


def test_a_models_error_in_the_host_arrives_as_itself(running, model, songs, use_host):
    use_host(running.environment)
    with pytest.raises(SongNotSupported, match=r"^the song lasts 10 s, longer than pop2piano's limit of 5 s"):
        load_generator("pop2piano", options(model, max_seconds=5)).cover(songs["song_a"], [Variant(1, 0)])
    with pytest.raises(ModelMissing, match=r"^there is no Pop2Piano model in .*absent: "):
        load_generator("pop2piano", options(model.parent / "absent"))
    assert running.client.call("ping")["pid"] == running.process.pid  # and the host goes on


def test_a_run_that_hangs_up_mid_cover_leaves_the_host_serving(running, model, songs):
    from multiprocessing.connection import Client

    asked = json.dumps(options(model, arrangers="6"))
    with Client(running.client.address, "AF_UNIX", bytes.fromhex(running.client.key)) as connection:
        connection.send(("cover", ("pop2piano", asked, str(songs["song_c"]), [(6, 0)])))
        kind, line = connection.recv()
        assert kind == "progress" and line.startswith("pop2piano: 1 covers x ")
    # the cancelled run's cover stops at its next progress line and lets go of the model
    covers = running.client.call("cover", "pop2piano", asked, str(songs["song_c"]), [(6, 0)])
    assert list(covers) == [Variant(6, 0)]


def test_a_host_that_dies_mid_cover_leaves_the_song_to_this_process(model, songs, use_host, caplog):
    started, folder = start_host()
    try:
        use_host(started.environment)
        generator = load_generator("pop2piano", options(model, arrangers="5"))
        lines: list[str] = []

        def progress(line: str) -> None:
            if not lines:  # the host is generating: kill it there, as the OOM killer would
                os.kill(started.process.pid, signal.SIGKILL)
                started.process.wait()
            lines.append(line)

        with caplog.at_level(logging.WARNING, logger=host.MODULE):
            covers = generator.cover(songs["song_b"], [Variant(5, 0)], progress=progress)
            again = load_generator("pop2piano", options(model, arrangers="5"))  # the rest of the run: here, unsaid
        assert isinstance(again, Pop2PianoGenerator)
        assert covers == again.cover(songs["song_b"], [Variant(5, 0)])
        warnings = [r.getMessage() for r in caplog.records if r.name == host.MODULE]
        assert len(warnings) == 1 and warnings[0].startswith(f"the model host at {started.client.address} did not answer (")
        assert warnings[0].endswith("this run loads its models itself") and started.client.key not in warnings[0]
        assert sum(line.endswith("sequences generated") for line in lines) >= 1  # the in-process cover's own lines
    finally:
        started.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_host_that_does_not_answer_is_said_once_and_models_load_here(use_host, tmp_path, caplog):
    use_host({host.ADDRESS: str(tmp_path / "socket"), host.KEY: "00" * 32})  # a host that never started
    with caplog.at_level(logging.WARNING, logger=host.MODULE):
        first, second = load_generator("basic-pitch"), load_generator("basic-pitch")
    assert type(first).__name__ == "BasicPitchGenerator" and first is second
    warnings = [r.getMessage() for r in caplog.records if r.name == host.MODULE]
    assert len(warnings) == 1 and "(FileNotFoundError: " in warnings[0]


def test_a_wrong_key_is_refused(running, use_host, caplog):
    use_host({**running.environment, host.KEY: "11" * 32})
    with caplog.at_level(logging.WARNING, logger=host.MODULE):
        assert host.current_host() is None
    warnings = [r.getMessage() for r in caplog.records if r.name == host.MODULE]
    assert len(warnings) == 1 and "(AuthenticationError: " in warnings[0] and "11" * 32 not in warnings[0]
    assert running.client.call("ping")["pid"] == running.process.pid  # the host still serves its own runs
