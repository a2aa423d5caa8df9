"""What a run started through the Prefect API may ask for (config.yaml's `run_form:`): the UI's run
form, `prefect deployment run` and the nightly's fan-out all start runs of the deployments with
parameters anyone who reaches the Prefect API can write. A local source or playlist must lie in
one of the folders named here; http(s) URLs go through the download's own address checks.

A module of its own because the root config composes it and the deployments import the root config.
"""

from __future__ import annotations

from pathlib import Path

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.urls import is_url


class RunFormSettings(Settings):
    source_folders: list[Path] = []  # folders whose files (sub-folders included) a run from the Prefect API may read; none: URLs only


def checked_source(source: str, folders: list[Path], setting_file: str) -> str:
    """`source` when it is an http(s) URL, else its real path (symlinks and `..` resolved) when that
    lies in one of `folders` (resolved likewise); otherwise one sentence. The real path is what
    the run reads, so a link swapped after the check does not lead elsewhere."""
    if is_url(source):
        return source
    real = Path(source).expanduser().resolve()
    if any(real.is_relative_to(Path(folder).expanduser().resolve()) for folder in folders):
        return str(real)
    allowed = ", ".join(str(folder) for folder in folders) or "none"
    raise CovermillError(f"{source}: a run started from the Prefect UI or API may only read files in run_form.source_folders "
                         f"({allowed}, set in {setting_file}); give an http(s) URL, or add the file's folder there.")
