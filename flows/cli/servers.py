"""`covermill serve` and `covermill deploy`: the Prefect deployments behind the UI's run form, the
nightly schedule and the workers of several machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from covermill.flows.cli.common import ConfigFile, WorkFolder, app, load_settings, one_sentence_on_error, say_error


def for_a_server(config: Optional[Path], no_server: str):
    """(settings, the config file deployments name, the API URL) for commands that register with
    a lasting Prefect server; `no_server` is the sentence when none is configured."""
    from prefect.settings import PREFECT_API_URL

    from covermill.flows.config import DEFAULT_CONFIG

    settings = load_settings(config)
    if not PREFECT_API_URL.value():
        say_error(no_server)
        raise typer.Exit(2)
    config_file = config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    return settings, str(config_file) if config_file else None, PREFECT_API_URL.value()


@app.command(
    help=(
        "Serve covermill's two Prefect deployments from this process until stopped: "
        "'covermill-song/cover-song' (one song, started by hand from the Prefect UI with a form: "
        "source, dry run, generators, arrangers, seeds) and 'covermill-nightly/nightly' (the "
        "playlist, on nightly.cron in nightly.timezone). Needs a running Prefect server: start "
        "one with `prefect server start` and set PREFECT_API_URL (the README has the steps).\n\n"
        "Examples:\n\n"
        "  PREFECT_API_URL=http://127.0.0.1:4200/api covermill serve --out covers --config config.yaml\n\n"
        "  prefect deployment run 'covermill-song/cover-song' --param source=https://youtu.be/ID"
    )
)
def serve(
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
) -> None:
    settings, config_file, api = for_a_server(config, "covermill serve needs a Prefect server that outlives it: start one with "
                                              "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api.")
    from prefect import serve as prefect_serve

    from covermill.flows.deployments import deployments

    print(f"serving covermill-song/cover-song and covermill-nightly/nightly ({settings.nightly.cron}, "
          f"{settings.nightly.timezone}) on {api}; Ctrl-C stops.", flush=True)
    prefect_serve(*deployments(settings, config_file, str(out)))


@app.command(
    help=(
        "Register the two deployments on a Prefect process work pool (created when missing), so "
        "workers on several machines share the runs: start `prefect worker start --pool POOL "
        "--type process --limit 1` on each GPU machine, with PREFECT_API_URL pointing at the same "
        "server. Workers find the flows in the installed covermill package; the work folder "
        "(--out) and the config file must be on storage they all see, at the same path. With "
        "nightly.fan_out: true the nightly run hands each song to the pool.\n\n"
        "Example:\n\n"
        "  covermill deploy --pool covermill --out /shared/covers --config /shared/config.yaml"
    )
)
def deploy(
    pool: Annotated[str, typer.Option("--pool", help="The process work pool's name.")] = "covermill",
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
) -> None:
    settings, config_file, _ = for_a_server(config, "covermill deploy needs the Prefect server the workers use: "
                                            "set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api).")
    from covermill.flows.deployments import deploy_to_pool

    with one_sentence_on_error():
        deploy_to_pool(settings, config_file, str(out), pool)
    print(f"deployed covermill-song/cover-song and covermill-nightly/nightly ({settings.nightly.cron}, "
          f"{settings.nightly.timezone}) on work pool {pool!r}.\n"
          f"start a worker on each machine: prefect worker start --pool {pool} --type process --limit 1")
