"""The command line: help with examples, a real end-to-end dry run, a bad source among good ones.
(Every kind of bad input, one sentence each: tests/flows/test_bad_inputs.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from covermill.flows.cli import app
from covermill.tasks.core.audio import probe
from covermill.tasks.core.layout import ledger_path
from covermill.tasks.core.ledger import Ledger

COVERMILL = str(Path(sys.executable).with_name("covermill"))


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["run"], ["doctor"], ["auth"], ["queue"], ["publish"], ["approve"], ["nightly"], ["serve"], ["deploy"], ["worker"]])
def test_help_explains_with_examples(command):
    result = subprocess.run([COVERMILL, *command, "--help"], capture_output=True, text=True, check=True)
    assert "Examples:" in result.stdout or "Example:" in result.stdout
    assert "covermill" in result.stdout


def test_doctor_finds_everything_on_this_machine():
    result = invoke("doctor")
    assert result.exit_code == 0, result.stdout
    for piece in ("FFmpeg", "FluidSynth", "soundfont", "ImageMagick", "essentia", "generator basic-pitch",
                  "generator transkun", "torch", "Prefect"):
        assert f"[ok  ] {piece}" in result.stdout


def test_doctor_prints_the_fix_for_a_missing_soundfont(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"render:\n  soundfont: {tmp_path / 'gone.sf2'}\n")
    result = invoke("doctor", "--config", str(config))
    assert result.exit_code == 1
    assert "[MISS] soundfont" in result.stdout and "fix: sudo apt-get install -y fluid-soundfont-gm" in result.stdout


def test_doctor_wants_the_oauth_client_only_once_publishing_is_on(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"upload:\n  auth:\n    client_secrets: {tmp_path / 'client.json'}\n")
    assert "[ok  ] YouTube OAuth client" in invoke("doctor", "--config", str(config)).stdout
    config.write_text(config.read_text() + "  enabled: true\n")
    result = invoke("doctor", "--config", str(config))
    assert result.exit_code == 1
    assert "[MISS] YouTube OAuth client" in result.stdout and "Desktop app" in result.stdout


@pytest.mark.server
def test_missing_file_is_one_sentence_from_a_real_process(tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run([COVERMILL, "run", str(tmp_path / "nope.ogg"), "--out", str(tmp_path / "out"), "--dry-run"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"covermill: {tmp_path / 'nope.ogg'}: no such file; check the path."]


@pytest.fixture(scope="module")
def dry_run(prefect_server, clips, tmp_path_factory):
    """One real CLI run over a good file and a bad one, shared by the tests below."""
    out = tmp_path_factory.mktemp("cli-out")
    missing = out.parent / "missing.ogg"
    result = invoke("run", str(clips["song_a"]), str(missing), "--out", str(out), "--dry-run")
    return out, result, missing


@pytest.mark.server
def test_a_bad_source_does_not_stop_the_others(dry_run):
    out, result, missing = dry_run
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"covermill: {missing}: no such file; check the path."]
    assert "1 of 2 songs done, 1 failed." in result.stdout
    assert result.stdout.count("would be published") == 1, result.stdout  # one publishing pass, after every song
    assert "video:" in result.stdout and "MIDI:" in result.stdout and "ranking:" in result.stdout
    index = out / "gallery" / "index.html"
    assert f"all songs: {index}" in result.stdout and index.exists()


@pytest.mark.server
def test_dry_run_makes_every_output(dry_run):
    out, result, _ = dry_run
    (folder,) = [p for p in out.iterdir() if p.is_dir() and p.name != "gallery"]
    for name in ("original.ogg", "audio.wav", "ranking.json", "winner.mid", "winner.flac", "thumbnail.jpg", "video.mp4",
                 "metadata.json", "upload_request.json"):
        assert (folder / name).stat().st_size > 0, name
    midis = sorted((folder / "candidates").glob("*.mid"))
    assert len(midis) >= 8
    assert {p.stem for p in midis} == {p.stem for p in (folder / "candidates").glob("*.flac")}
    ranking = json.loads((folder / "ranking.json").read_text())
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["winner"]["id"] == ranking["pick"] == ranking["scores"][0]["candidate_id"]
    assert (folder / "winner.mid").read_bytes() == (folder / "candidates" / f"{ranking['pick']}.mid").read_bytes()
    assert "song_a" in metadata["publication"]["title"]
    # the cover lasts as long as its notes plus the piano's release; the video as long as the cover
    assert 24.0 < probe(folder / "winner.flac").duration < 30.0
    assert abs(probe(folder / "video.mp4").duration - probe(folder / "winner.flac").duration) < 0.5
    assert not list(out.rglob(".*.tmp-*"))  # no half-written file left behind
    ledger = Ledger(ledger_path(out))
    assert set(ledger.stages(folder.name).values()) == {"done"}
    assert len(ledger.candidates(folder.name)) == len(midis)


@pytest.mark.server
def test_a_song_run_leaves_its_artifacts_in_the_prefect_ui(dry_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    from covermill.tasks.core.run_artifacts import artifact_key

    out, _, _ = dry_run
    (folder,) = [p for p in out.iterdir() if p.is_dir() and p.name != "gallery"]
    keys = {kind: artifact_key(kind, folder.name) for kind in ("ranking", "generate", "video-render", "thumbnail", "video", "midi", "review")}
    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=list(keys.values()))))
    artifacts = {a.key: a for a in found}
    assert set(artifacts) == set(keys.values())
    assert artifacts[keys["ranking"]].type == "table"
    for progress in ("generate", "video-render"):
        assert artifacts[keys[progress]].type == "progress" and float(artifacts[keys[progress]].data) == 100.0
    review = out / "gallery" / folder.name / "review.html"
    for kind, path in (("thumbnail", folder / "thumbnail.jpg"), ("video", folder / "video.mp4"), ("midi", folder / "winner.mid"),
                       ("review", review)):
        assert artifacts[keys[kind]].type == "markdown" or artifacts[keys[kind]].type == "link"
        assert path.resolve().as_uri() in artifacts[keys[kind]].data


@pytest.mark.server
def test_rerun_skips_finished_stages_and_finishes_unfinished_ones(dry_run, clips):
    out, _, _ = dry_run
    (folder,) = [p for p in out.iterdir() if p.is_dir() and p.name != "gallery"]
    outputs = [p for p in folder.rglob("*") if p.is_file() and p.name not in ("metadata.json", "upload_request.json", "review.html")]  # rewritten by every run
    before = {p: p.stat().st_mtime_ns for p in outputs}
    # A run killed while encoding: the video never landed and its stage never finished.
    (folder / "video.mp4").unlink()
    Ledger(ledger_path(out)).mark(folder.name, "video", "running")

    result = invoke("run", str(clips["song_a"]), "--out", str(out), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "generate: already done, skipped" in result.stdout
    assert "rank: already done, skipped" in result.stdout
    changed = [p.name for p in outputs if p.exists() and p.stat().st_mtime_ns != before[p]]
    assert changed == ["video.mp4"]  # only the unfinished stage ran again
    assert (folder / "video.mp4").exists()
    assert abs(probe(folder / "video.mp4").duration - probe(folder / "winner.flac").duration) < 0.5
    assert Ledger(ledger_path(out)).stage_state(folder.name, "video")[0] == "done"


@pytest.mark.server
def test_a_changed_style_re_makes_its_candidates_the_ranking_and_what_follows_only(dry_run, clips, tmp_path):
    """Runs last on the shared work folder: the picked style gets another step, nothing else changes."""
    import yaml

    from covermill.tasks.arrange.styles import ArrangeSettings

    out, _, _ = dry_run
    (folder,) = [p for p in out.iterdir() if p.is_dir() and p.name != "gallery"]
    pick = json.loads((folder / "ranking.json").read_text())["pick"]
    style = next(c.style for c in Ledger(ledger_path(out)).candidates(folder.name) if c.id == pick)
    styles = ArrangeSettings().model_dump(mode="json")["styles"]
    styles[style] = [*styles[style], {"step": "thin", "max_voices": 2, "min_duration": 0.3}]  # surely other notes
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"arrange": {"styles": styles}}))
    outputs = [p for p in folder.rglob("*") if p.is_file() and p.name not in ("metadata.json", "upload_request.json")]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs}

    result = invoke("run", str(clips["song_a"]), "--out", str(out), "--dry-run", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    changed = {p.relative_to(folder).as_posix() for p in outputs if (p.stat().st_ino, p.stat().st_mtime_ns) != before[p]}
    of_style = {p.relative_to(folder).as_posix() for p in outputs
                if p.parent.name == "candidates" and re.fullmatch(rf"basic-pitch-{re.escape(style)}(-s\d+)?", p.stem)}
    score = {name for name in ("score.musicxml", "score.pdf", "score.png") if (folder / name).exists()}  # the winner's sheet music
    assert of_style and "score.musicxml" in score
    assert changed == of_style | {"ranking.json", "winner.mid", "winner.flac", "video.mp4"} | score
    assert "thumbnail: already done, skipped" in result.stdout
    assert "rank: made with other settings or inputs; made again" in result.stdout
