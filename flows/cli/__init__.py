"""The `covermill` command: one Typer app, its commands grouped by what they are for.

common.py      the options and the error handling every command shares
songs.py       run (songs now) and nightly (a playlist)
publishing.py  auth, queue, publish (YouTube)
servers.py     serve and deploy (Prefect deployments for the UI and workers)
local_server.py  server start|status|stop (a local Prefect server the commands that run flows use)
doctor.py      doctor (is everything covermill needs on this machine?)
"""

from __future__ import annotations

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()  # before anything imports Prefect

# each module registers its commands; the order here is the order of `covermill --help`
# (Typer lists a command group such as `server` after the plain commands)
from covermill.flows.cli import songs, servers, publishing, doctor, local_server  # noqa: E402, F401, I001
from covermill.flows.cli.common import app  # noqa: E402


def main() -> None:
    import sys

    from covermill.tasks.core.orphans import guard_this_command

    # Prefect's temporary server (~200 MB) and the ranking's process pool outlived a SIGKILLed
    # command (bench/chaos.py); the guard stops whatever the command leaves (tasks/core/orphans.py).
    # A command that only explains itself starts nothing to guard.
    if len(sys.argv) > 1 and not {"--help", "-h"} & set(sys.argv[1:]):
        guard_this_command()
    app()


__all__ = ["app", "main"]
