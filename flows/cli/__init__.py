"""The `covermill` command: one Typer app, its commands grouped by what they are for.

common.py      the options and the error handling every command shares
songs.py       run (songs now) and nightly (a playlist)
publishing.py  auth, queue, publish (YouTube)
servers.py     serve and deploy (Prefect deployments for the UI and workers)
doctor.py      doctor (is everything covermill needs on this machine?)
"""

from __future__ import annotations

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()  # before anything imports Prefect

# each module registers its commands; the order here is the order of `covermill --help`
from covermill.flows.cli import songs, servers, publishing, doctor  # noqa: E402, F401, I001
from covermill.flows.cli.common import app  # noqa: E402


def main() -> None:
    app()


__all__ = ["app", "main"]
