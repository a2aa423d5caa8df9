"""`covermill serve`, `covermill deploy` and `covermill worker`: the Prefect deployments behind the
UI's run form, the nightly schedule and the workers of several machines."""

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


# `covermill serve` and `covermill worker` run each flow run in a new process: a model host keeps
# the models loaded and warm across them (models/host.py)
ModelHost = Annotated[bool, typer.Option(
    "--model-host/--no-model-host",
    help="Load the models once, in a model host process that every run's process uses, so only the first song "
         "pays loading and warm-up; --no-model-host: each run loads its own.")]


def say(line: str) -> None:
    print(line, flush=True)


def generators_to_preload(settings) -> list[tuple[str, str]]:
    """(name, options as JSON) of the config's generators: loaded and warmed in the model host as the
    service starts, not by the first song."""
    return [(name, settings.generate.options_for(name).model_dump_json()) for name in settings.generate.generators]


def tell_stopped(signal_name: str | None) -> None:
    """The line a service prints when a signal stopped it. The exit code stays 0: a service that
    stopped when asked stopped cleanly (systemd needs no SuccessExitStatus=143)."""
    if signal_name:
        print(f"stopped on {signal_name}; runs in flight were cancelled and resume from their finished stages "
              "when run again.", flush=True)


@app.command(
    help=(
        "Serve covermill's two Prefect deployments from this process until stopped: "
        "'covermill-song/cover-song' (one song, started by hand from the Prefect UI with a form: "
        "source, dry run, generators, arrangers, seeds) and 'covermill-nightly/nightly' (the "
        "playlist, on nightly.cron in nightly.timezone). Needs a running Prefect server: start "
        "one with `prefect server start` and set PREFECT_API_URL (the README has the steps). "
        "SIGTERM or Ctrl-C stops it: runs in flight are cancelled (they resume from their finished "
        "stages when run again) and it exits 0. The runs' models load once, in a model host process "
        "(--no-model-host: each run loads its own).\n\n"
        "Examples:\n\n"
        "  PREFECT_API_URL=http://127.0.0.1:4200/api covermill serve --out covers --config config.yaml\n\n"
        "  prefect deployment run 'covermill-song/cover-song' --param source=https://youtu.be/ID"
    )
)
def serve(
    out: WorkFolder = Path("out"),
    config: ConfigFile = None,
    model_host: ModelHost = True,
) -> None:
    settings, config_file, api = for_a_server(config, "covermill serve needs a Prefect server that outlives it: start one with "
                                              "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api.")
    from covermill.flows.deployments import deployments
    from covermill.flows.services import serve_until_stopped

    print(f"serving covermill-song/cover-song and covermill-nightly/nightly ({settings.nightly.cron}, "
          f"{settings.nightly.timezone}) on {api}; Ctrl-C or SIGTERM stops.", flush=True)
    tell_stopped(serve_until_stopped(deployments(settings, config_file, str(out)), model_host, say, generators_to_preload(settings)))


@app.command(
    help=(
        "Register the two deployments on a Prefect process work pool (created when missing), so "
        "workers on several machines share the runs: start `covermill worker --pool POOL` on each "
        "GPU machine, with PREFECT_API_URL pointing at the same server. Workers find the flows in "
        "the installed covermill package; the work folder "
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
          f"start a worker on each machine: covermill worker --pool {pool}" + (f" --config {config_file}" if config_file else ""))


@app.command(
    help=(
        "Run a Prefect process worker on a work pool that `covermill deploy` filled, until SIGTERM or "
        "Ctrl-C: it takes the pool's runs one at a time (--limit), and when stopped it takes no new "
        "run, cancels the runs in flight (marked Cancelled in Prefect; the song resumes from its "
        "finished stages when run again) and exits 0. `prefect worker start --type process` does "
        "the same work but does not stop on SIGTERM (prefect 3.8). The runs' models load once, in a model "
        "host process (--no-model-host: each run loads its own); with --config, the config `covermill "
        "deploy` was given, its generators are loaded there as the worker starts, before any run.\n\n"
        "Example:\n\n"
        "  PREFECT_API_URL=http://10.0.0.5:4200/api covermill worker --pool covermill --config /shared/config.yaml"
    )
)
def worker(
    pool: Annotated[str, typer.Option("--pool", help="The process work pool's name.")] = "covermill",
    limit: Annotated[int, typer.Option("--limit", min=1, help="Runs at a time on this machine.")] = 1,
    name: Annotated[Optional[str], typer.Option("--name", help="The worker's name in the Prefect UI (default: a random one).")] = None,
    model_host: ModelHost = True,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="The config the pool's deployments use: its generators are loaded and warmed in the model "
                               "host as the worker starts (without it, each loads when a run first needs it).")] = None,
) -> None:
    from prefect.settings import PREFECT_API_URL

    from covermill.flows.services import work_until_stopped

    if not PREFECT_API_URL.value():
        say_error("covermill worker needs the Prefect server the deployments are on: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api).")
        raise typer.Exit(2)
    # a worker does not read ./config.yaml on its own: its runs take the config their deployment names
    preload = generators_to_preload(load_settings(config)) if config is not None else []
    tell_stopped(work_until_stopped(pool, limit, name, printer=say, model_host=model_host, preload=preload))
