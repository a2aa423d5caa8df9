"""The layers hold: flows -> tasks -> models, nothing going back; inside tasks/, core/ imports no other
concern and the concerns import each other without a cycle; the docs and docstrings name only files
that exist. Read from the sources (every import, lazy ones inside functions included)."""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"models": 0, "tasks": 1, "flows": 2}
IMPORT = re.compile(r"^\s*(?:from|import)\s+covermill\.(\w+)(?:\.(\w+))?", re.MULTILINE)


def imports_of(layer: str) -> list[tuple[Path, str, str | None]]:
    """(file, imported layer, imported sub-package or module) for every covermill import under `layer`/."""
    found = []
    for path in sorted((REPO / layer).rglob("*.py")):
        for match in IMPORT.finditer(path.read_text(encoding="utf-8")):
            found.append((path.relative_to(REPO), match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_no_import_goes_up_a_layer(layer):
    upward = [f"{path} imports covermill.{target}" for path, target, _ in imports_of(layer)
              if target in LAYERS and LAYERS[target] > LAYERS[layer]]
    assert not upward


def test_the_concerns_inside_tasks_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    for path, target, sub in imports_of("tasks"):
        if len(path.parts) < 3 or target != "tasks" or sub is None:
            continue
        graph.setdefault(path.parts[1], set())
        if sub != path.parts[1]:
            graph[path.parts[1]].add(sub)
    assert set(graph) >= {"core", "cover", "arrange", "rank", "media", "publish"}
    assert graph["core"] == set(), f"core/ must stand alone, it imports {graph['core']}"
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        pytest.fail(f"tasks/ sub-packages import each other in a cycle: {cycle.args[1]}")


def test_every_tasks_module_sits_in_a_concern():
    loose = [p.name for p in (REPO / "tasks").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"tasks/ keeps its modules in sub-packages; move {loose} into one"


def test_every_package_is_listed_for_installation():
    """A regular (non-editable) install ships only the packages pyproject.toml lists."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {"covermill." + ".".join(init.parent.relative_to(REPO).parts)
               for layer in ("flows", "tasks", "models", "templates") for init in (REPO / layer).rglob("__init__.py")}
    assert present == listed


# A repository path as the docs write it: a top-level folder, then a file or folder name.
REPO_PATH = re.compile(r"(?<![\w./-])((?:flows|tasks|models|templates|tests|bench)/[\w./-]*\w)")


def repo_texts() -> list[Path]:
    """The docs, the settings and every source file whose words may name another file."""
    texts = [REPO / name for name in ("README.md", "config.yaml", "prefect.yaml", "Makefile", "pyproject.toml")]
    for folder in ("flows", "tasks", "models", "templates", "tests", "bench"):
        texts += sorted(p for p in (REPO / folder).rglob("*") if p.suffix in {".py", ".md", ".j2"})
    return texts


def test_the_docs_and_docstrings_name_only_files_that_exist():
    named = 0
    missing = []
    for text in repo_texts():
        for path in set(REPO_PATH.findall(text.read_text(encoding="utf-8"))):
            named += 1
            if not (REPO / path).exists():
                missing.append(f"{text.relative_to(REPO)} names {path}")
    assert named > 50  # the check reads what it should: the docs name many files
    assert not missing, "\n".join(sorted(missing))
