"""prefect.yaml: `prefect deploy --all` registers the same two deployments `covermill deploy` makes,
on a real Prefect server, with the nightly settings' default schedule (what config.yaml documents)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from covermill.flows.config import CovermillConfig

from helpers import prefect_http

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_the_schedule_is_the_default_nightly_schedule():
    (nightly,) = [d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"] if d["name"] == "nightly"]
    defaults = CovermillConfig().nightly  # not config.yaml: a user's edits there must not break this
    assert nightly["schedules"] == [{"cron": defaults.cron, "timezone": defaults.timezone}]


@pytest.mark.server
def test_prefect_deploy_registers_both_deployments_on_the_pool(prefect_api):
    api, env = prefect_api
    env = {**env, "PWD": str(ROOT)}
    subprocess.run([PREFECT, "work-pool", "create", "covermill", "--type", "process"], env=env, cwd=ROOT,
                   capture_output=True, text=True)  # already there is fine too
    deployed = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    with prefect_http(api) as client:
        song = client.get("/deployments/name/covermill-song/cover-song").json()
        nightly = client.get("/deployments/name/covermill-nightly/nightly").json()
    assert song["work_pool_name"] == nightly["work_pool_name"] == "covermill"
    assert song["entrypoint"] == "flows/deployments.py:song_run"
    assert song["parameter_openapi_schema"]["required"] == ["source"]
    assert song["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "UTC"
