"""What a run started through the Prefect API may ask for: a local source only inside
run_form.source_folders (after symlinks and `..` are resolved), any http(s) URL, and publishing only
when the config allows it. The deployments' flows are called as functions here; that the work folder
and config file stay the deployment's needs a real deployment run (tests/flows/test_deployments.py)."""

from __future__ import annotations

import re

import pytest
import yaml

from covermill.flows.deployments import nightly_run, song_run
from covermill.flows.run_form import checked_source
from covermill.tasks.core.errors import CovermillError


@pytest.fixture
def folders(tmp_path):
    """(allowed folder with a song and a sub-folder, a folder outside it with a song)."""
    allowed, outside = tmp_path / "music", tmp_path / "private"
    (allowed / "album").mkdir(parents=True)
    outside.mkdir()
    for path in (allowed / "song.ogg", allowed / "album" / "track.ogg", outside / "secret.ogg"):
        path.write_bytes(b"OggS")
    return allowed, outside


def test_files_in_the_folders_pass_as_their_real_path(folders):
    allowed, _ = folders
    assert checked_source(str(allowed / "song.ogg"), [allowed], "c.yaml") == str(allowed / "song.ogg")
    assert checked_source(str(allowed / "album" / ".." / "album" / "track.ogg"), [allowed], "c.yaml") == str(allowed / "album" / "track.ogg")
    (allowed / "alias.ogg").symlink_to(allowed / "album" / "track.ogg")
    assert checked_source(str(allowed / "alias.ogg"), [allowed], "c.yaml") == str(allowed / "album" / "track.ogg")


def test_a_folder_named_through_a_link_still_holds_its_files(folders, tmp_path):
    allowed, _ = folders
    (tmp_path / "link-to-music").symlink_to(allowed)
    assert checked_source(str(allowed / "song.ogg"), [tmp_path / "link-to-music"], "c.yaml") == str(allowed / "song.ogg")


@pytest.mark.parametrize("escape", ["dotdot", "symlink", "linked-folder", "absolute", "prefix"])
def test_escapes_from_the_folders_are_refused(folders, escape):
    allowed, outside = folders
    if escape == "dotdot":
        source = f"{allowed}/album/../../private/secret.ogg"
    elif escape == "symlink":
        (allowed / "innocent.ogg").symlink_to(outside / "secret.ogg")
        source = str(allowed / "innocent.ogg")
    elif escape == "linked-folder":
        (allowed / "more").symlink_to(outside)
        source = str(allowed / "more" / "secret.ogg")
    elif escape == "absolute":
        source = "/etc/passwd"
    else:  # /…/music-private is not inside /…/music
        (allowed.parent / "music-private").mkdir()
        source = str(allowed.parent / "music-private" / "x.ogg")
    with pytest.raises(CovermillError) as refused:
        checked_source(source, [allowed], "/srv/config.yaml")
    assert str(refused.value) == (f"{source}: a run started from the Prefect UI or API may only read files in run_form.source_folders "
                                  f"({allowed}, set in /srv/config.yaml); give an http(s) URL, or add the file's folder there.")


def test_with_no_folders_only_urls_pass(folders):
    allowed, _ = folders
    assert checked_source("https://www.youtube.com/watch?v=abc", [], "c.yaml") == "https://www.youtube.com/watch?v=abc"
    with pytest.raises(CovermillError, match=r"run_form.source_folders \(none, set in c.yaml\)"):
        checked_source(str(allowed / "song.ogg"), [], "c.yaml")


def config_file(tmp_path, settings: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def test_the_song_flow_refuses_a_source_outside_the_folders(folders, tmp_path):
    allowed, outside = folders
    config = config_file(tmp_path, {"run_form": {"source_folders": [str(allowed)]}})
    with pytest.raises(CovermillError, match=re.escape(f"{outside / 'secret.ogg'}: a run started from the Prefect UI or API")):
        song_run.fn(source=str(outside / "secret.ogg"), out_dir=str(tmp_path / "out"), config_file=config)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_the_nightly_flow_refuses_a_playlist_outside_the_folders(folders, tmp_path):
    allowed, outside = folders
    config = config_file(tmp_path, {"run_form": {"source_folders": [str(allowed)]}})
    with pytest.raises(CovermillError, match=re.escape(f"{outside}: a run started from the Prefect UI or API")):
        nightly_run.fn(playlist=str(outside), out_dir=str(tmp_path / "out"), config_file=config)
    assert not (tmp_path / "out").exists()


def test_publishing_from_a_run_needs_upload_enabled(tmp_path):
    config = config_file(tmp_path, {"upload": {"enabled": False}})
    with pytest.raises(CovermillError, match=re.escape(f"dry_run is off, but upload.enabled is false in {config}: a run from the Prefect UI")):
        song_run.fn(source="https://example.com/song.ogg", dry_run=False, out_dir=str(tmp_path / "out"), config_file=config)
    with pytest.raises(CovermillError, match="dry_run is off, but upload.enabled is false"):
        nightly_run.fn(playlist="https://example.com/list", dry_run=False, out_dir=str(tmp_path / "out"), config_file=config)
    assert not (tmp_path / "out").exists()


@pytest.mark.server
def test_a_list_in_the_folders_cannot_name_files_outside_them(prefect_server, folders, tmp_path):
    allowed, outside = folders
    listing = allowed / "tonight.txt"
    listing.write_text(f"{outside / 'secret.ogg'}\n{allowed / 'song.ogg'}\n")
    config = config_file(tmp_path, {"run_form": {"source_folders": [str(allowed)]}})
    result = nightly_run.fn(playlist=str(listing), out_dir=str(tmp_path / "out"), config_file=config)
    refused, inside = result.failed[str(outside / "secret.ogg")], result.failed[str(allowed / "song.ogg")]
    assert refused.startswith(f"{outside / 'secret.ogg'}: a run started from the Prefect UI or API may only read files in")
    assert "Prefect UI" not in inside  # tried, and failed as what it is (no audio), not refused
    assert not (tmp_path / "out" / "private").exists()


def test_a_run_from_the_api_stops_before_any_song_without_a_soundfont(tmp_path):
    config = config_file(tmp_path, {"render": {"soundfont": str(tmp_path / "gone.sf2")}})
    with pytest.raises(CovermillError, match=re.escape(str(tmp_path / "gone.sf2"))):
        song_run.fn(source="https://example.com/song.ogg", out_dir=str(tmp_path / "out"), config_file=config)
    assert not (tmp_path / "out").exists()
