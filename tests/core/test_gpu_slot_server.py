"""The `gpu` slot on a real Prefect server when a run is killed while holding it: its lease brings
the slot back, `covermill doctor` shows who holds it, and `--reset-gpu-slot` frees it at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import prefect_http

pytestmark = pytest.mark.server

COVERMILL = str(Path(sys.executable).with_name("covermill"))

HOLDER = textwrap.dedent("""
    import sys, time
    from covermill.tasks.core.gpu_slot import slot_holder
    with slot_holder(sys.argv[1], 1, None, float(sys.argv[2]))():
        print("held", flush=True)
        time.sleep(600)
""")


def held_slots(api: str, name: str) -> int:
    with prefect_http(api) as client:
        return client.get(f"/v2/concurrency_limits/{name}").json()["active_slots"]


def kill_while_holding(env: dict, name: str, lease_s: float) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, name, str(lease_s)], env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # no chance to give the slot back
    holder.wait()


def test_a_killed_runs_slot_comes_back_by_its_lease_or_by_doctor(prefect_api, tmp_path):
    api, env = prefect_api
    # the lease's side: Prefect's shortest lease, 60 s, runs out while doctor is tried on another limit
    kill_while_holding(env, "gpu-lease", lease_s=60)
    killed_at = time.monotonic()
    assert held_slots(api, "gpu-lease") == 1

    config = tmp_path / "config.yaml"
    config.write_text("gpu:\n  limit: gpu-doctor\n")
    kill_while_holding(env, "gpu-doctor", lease_s=300)
    assert held_slots(api, "gpu-doctor") == 1
    shown = subprocess.run([COVERMILL, "doctor", "--config", str(config)], env=env, capture_output=True, text=True)
    assert "[ok  ] GPU slot: 'gpu-doctor': 1 of 1 slot(s) held" in shown.stdout
    reset = subprocess.run([COVERMILL, "doctor", "--config", str(config), "--reset-gpu-slot"], env=env, capture_output=True, text=True)
    assert "freed 1 slot(s) of 'gpu-doctor'" in reset.stdout
    assert "'gpu-doctor': 0 of 1 slot(s) held" in reset.stdout
    assert held_slots(api, "gpu-doctor") == 0

    while held_slots(api, "gpu-lease") and time.monotonic() - killed_at < 120:
        time.sleep(1)
    assert held_slots(api, "gpu-lease") == 0
    assert time.monotonic() - killed_at >= 55  # given back by the lease running out, not earlier
