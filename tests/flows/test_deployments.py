"""`covermill serve` against a real Prefect server on 127.0.0.1: both deployments exist with typed
parameters, the nightly schedule makes scheduled runs in its time zone, a run started with
parameters (as the UI's form does) goes to Completed, and bad parameters are refused up front."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from covermill.tasks.core.layout import ledger_path
from covermill.tasks.core.ledger import Ledger

from helpers import prefect_http, stop

pytestmark = pytest.mark.server

COVERMILL = str(Path(sys.executable).with_name("covermill"))
SONG = "covermill-song/cover-song"
NIGHTLY = "covermill-nightly/nightly"


def wait_for(check, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if process is not None and process.poll() is not None:
            break
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


@pytest.fixture(scope="module")
def served(prefect_api, short_clips, tmp_path_factory):
    api, env = prefect_api
    root = tmp_path_factory.mktemp("served")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"arrange": {"seeds": [0]},
                                      "nightly": {"cron": "30 4 * * *", "timezone": "Europe/Paris"},
                                      "run_form": {"source_folders": [str(short_clips["song_b"].parent)]}}))
    out = root / "out"
    log = root / "serve.log"
    with open(log, "w") as sink:
        process = subprocess.Popen([COVERMILL, "serve", "--out", str(out), "--config", str(config)],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=root)
    client = prefect_http(api)  # a 503 under load is retried, as Prefect's own client does

    def both():  # ours: other tests on this server register deployments of the same names
        found = [client.get(f"/deployments/name/{name}") for name in (SONG, NIGHTLY)]
        if not all(r.status_code == 200 for r in found):
            return None
        found = [r.json() for r in found]
        return found if all(d["parameters"].get("out_dir") == str(out) for d in found) else None

    try:
        song, nightly = wait_for(both, 120, "the two deployments", process, log)
        yield client, song, nightly, out, log
    finally:
        stop(process)
        client.close()


def test_the_deployments_take_typed_parameters(served):
    _, song, nightly, out, _ = served
    schema = song["parameter_openapi_schema"]
    assert schema["required"] == ["source"]
    fields = schema["properties"]
    assert fields["dry_run"]["type"] == "boolean" and fields["dry_run"]["default"] is True
    assert fields["generators"]["type"] == "array" and fields["generators"]["default"] == []
    assert {"basic-pitch", "transkun", "pop2piano"} <= set(fields["generators"]["items"]["enum"])
    assert fields["seeds"]["items"]["type"] == "integer"
    assert song["parameters"]["out_dir"] == str(out) and song["parameters"]["dry_run"] is True
    assert set(nightly["parameter_openapi_schema"]["properties"]) == {"playlist", "dry_run", "max_songs", "out_dir", "config_file"}


def test_the_nightly_schedule_makes_scheduled_runs_in_its_time_zone(served):
    client, _, nightly, _, _ = served
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "30 4 * * *" and schedule["schedule"]["timezone"] == "Europe/Paris"

    def scheduled():
        runs = client.post("/flow_runs/filter", json={
            "flow_runs": {"deployment_id": {"any_": [nightly["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}}}).json()
        return runs or None

    runs = wait_for(scheduled, 60, "scheduled nightly runs")
    for run in runs:
        local = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Paris"))
        assert (local.hour, local.minute) == (4, 30)


def test_a_run_with_parameters_completes(served, short_clips):
    client, song, _, out, log = served
    run = client.post(f"/deployments/{song['id']}/create_flow_run", json={
        "parameters": {"source": str(short_clips["song_b"]), "generators": ["basic-pitch"], "seeds": [0]}})
    assert run.status_code == 201, run.text

    def finished():
        state = client.get(f"/flow_runs/{run.json()['id']}").json()["state"]
        return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    state = wait_for(finished, 400, "the cover-song run", log=log)
    assert state["type"] == "COMPLETED", f"{state}\n{log.read_text()[-3000:]}"
    (song_row,) = Ledger(ledger_path(out)).songs()
    assert song_row.title == "song_b"
    assert Ledger(ledger_path(out)).is_done(song_row.id, "video")


def test_a_run_cannot_move_the_work_folder_or_the_config(served, tmp_path):
    """The form shows out_dir and config_file, but a run of the deployment keeps the deployment's: a
    config names modules to import (thumbnail.image_check), the work folder is where files go."""
    client, song, _, out, log = served
    elsewhere = tmp_path / "elsewhere"
    other_config = tmp_path / "other.yaml"
    other_config.write_text(yaml.safe_dump({"thumbnail": {"image_check": "os:system"}}))
    runs = {name: client.post(f"/deployments/{song['id']}/create_flow_run", json={
                "parameters": {"source": "https://example.com/song.ogg", name: str(value)}}).json()["id"]
            for name, value in (("out_dir", elsewhere), ("config_file", other_config))}

    def finished(run_id):
        def check():
            state = client.get(f"/flow_runs/{run_id}").json()["state"]
            return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
        return check

    for name, run_id in runs.items():
        state = wait_for(finished(run_id), 120, f"the run with another {name}", log=log)
        assert state["type"] == "FAILED", state
        assert f"runs of this deployment use '{song['parameters'][name]}'" in state["message"], state["message"]
        assert f"without changing {name}" in state["message"]
    assert not elsewhere.exists()


def test_bad_parameters_are_refused_before_a_run_exists(served):
    client, song, _, _, _ = served
    refused = client.post(f"/deployments/{song['id']}/create_flow_run", json={"parameters": {"generators": ["basic-pitch"]}})
    assert refused.status_code == 409 and "source" in refused.text
    refused = client.post(f"/deployments/{song['id']}/create_flow_run",
                          json={"parameters": {"source": "x.ogg", "generators": ["no-such-model"]}})
    assert refused.status_code == 409 and "no-such-model" in refused.text


@pytest.mark.browser
def test_the_run_form_in_the_prefect_ui_shows_the_parameter_fields(served, prefect_api, tmp_path_factory):
    from browser import dump_dom, screenshot

    client, song, _, _, _ = served
    api, _ = prefect_api
    form = f"{api.removesuffix('/api')}/deployments/deployment/{song['id']}/run"
    dom = dump_dom(form)
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", dom)).split())
    assert "Create Flow Run for Deployment: cover-song" in text
    for field in ("source", "dry_run", "generators", "arrangers", "seeds", "out_dir", "config_file"):
        assert re.search(rf"\b{field}\b", text), field
    assert "seeds (Optional)" in text and "source (Optional)" not in text  # the form knows what is required
    assert "Property is type" not in text  # every field is a plain input, no type picker
    png = screenshot(form, tmp_path_factory.mktemp("artifacts") / "cover-song-run-form.png")
    assert png.stat().st_size > 20_000
