"""The card's folders install under the covermill namespace, and nothing generic lands in site-packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_namespace_maps_to_the_cards_folders(tmp_path):
    # From an unrelated folder, so the repo root is not on sys.path by accident.
    script = (
        "import importlib.util, json, covermill.flows, covermill.tasks, covermill.models, covermill.templates\n"
        "print(json.dumps({'homes': [m.__path__[0] for m in (covermill.flows, covermill.tasks, covermill.models, covermill.templates)],\n"
        "                  'generic': [importlib.util.find_spec(n) is not None for n in ('flows', 'tasks', 'models', 'templates')]}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    import json

    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert [Path(p) for p in found["homes"]] == [REPO / name for name in ("flows", "tasks", "models", "templates")]
    assert found["generic"] == [False, False, False, False]


def test_templates_ship_as_package_data():
    from importlib.resources import files

    names = {p.name for p in files("covermill.templates").iterdir()}
    assert {"title.j2", "description.j2"} <= names
