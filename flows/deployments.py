"""What the Prefect UI and the schedule run: two flows with typed parameters a form can show.

`cover_song` and `nightly` take a whole CovermillConfig, which suits code and the CLI but would
render as a form of every setting. These entry flows take what a person picks for one run
(the source or playlist, dry run, generators, arrangers, seeds) and read everything else from the
config file the deployment names. The song's flow runs inside the form's run (its stages are that
run's tasks); the nightly runs each song as a subflow of its own.

`covermill serve` serves both from this process (no work pool needed); `covermill deploy`
registers them on a process work pool, so workers on several machines share the runs.

Whoever reaches the Prefect API can start runs with any parameters, so a run picks the song, not
where files go nor which settings apply (a config file can name a module to import:
thumbnail.image_check): the work folder and the config file are the deployment's, a local source
must lie in run_form.source_folders, and publishing needs upload.enabled in that config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron
from pydantic import Field

from covermill.flows.config import CovermillConfig, load_config, with_overrides
from covermill.flows.cover_song import cover_song
from covermill.flows.nightly import SONG_DEPLOYMENT_NAME, nightly
from covermill.flows.preflight import preflight
from covermill.flows.run_form import checked_source
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.records import CoverResult, NightlyResult
from covermill.tasks.cover.generate import known_generators

SONG_FLOW, SONG_DEPLOYMENT = SONG_DEPLOYMENT_NAME.split("/")
NIGHTLY_FLOW, NIGHTLY_DEPLOYMENT = "covermill-nightly", "nightly"

OUT_DIR_FIELD = "Work folder (shared by every worker): the deployment's (covermill serve/deploy --out); another is refused."
CONFIG_FILE_FIELD = "config.yaml on the worker: the deployment's (covermill serve/deploy --config); another is refused."

# The generators installed here (the covermill.generators entry-point group), as a dropdown in the run form.
GeneratorName = Literal[tuple(known_generators())]  # type: ignore[valid-type]


def run_config(config_file: str | None, generators: list[str] | None = None, arrangers: str | None = None,
               seeds: list[int] | None = None, max_songs: int | None = None) -> CovermillConfig:
    """The config file's settings with this run's choices applied (empty ones keep the file's),
    checked like the command line's."""
    config = with_overrides(load_config(Path(config_file) if config_file else None),
                            ",".join(generators) if generators else None, arrangers or None,
                            ",".join(str(s) for s in seeds) if seeds else None)
    if max_songs is not None:
        config = config.model_copy(update={"nightly": config.nightly.model_copy(update={"max_songs": max_songs})})
    return config


def _same_path(given: str, fixed: str) -> bool:
    return given == fixed or bool(fixed) and Path(given).resolve() == Path(fixed).resolve()


def deployment_files(**given: str) -> dict[str, str]:
    """The work folder and config file (keyword: the run's value) a run uses: its deployment's. A run
    may leave one empty (the nightly's fan-out does when the command line had no config file) or
    repeat it; another value is refused. Outside a deployment run (code, a test) the values given."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import deployment

    if deployment.id is None:
        return given
    with get_client(sync_client=True) as client:
        fixed = client.read_deployment(deployment.id).parameters
    for name, value in given.items():
        if value and name in fixed and not _same_path(value, fixed[name]):
            raise CovermillError(f"{name} {value!r}: runs of this deployment use {fixed[name]!r}, as `covermill serve` or "
                                 f"`covermill deploy` set it; start the run again without changing {name}.")
    return {name: fixed.get(name, value) for name, value in given.items()}


def check_publishing(dry_run: bool, config: CovermillConfig, setting_file: str) -> None:
    if not dry_run and not config.upload.enabled:
        raise CovermillError(f"dry_run is off, but upload.enabled is false in {setting_file}: a run from the Prefect UI or "
                             "API publishes only when the config allows it; leave dry_run on, or set upload.enabled: true there.")


def setting_file(config_file: str) -> str:
    return config_file or "./config.yaml or the built-in defaults"


@flow(name=SONG_FLOW, log_prints=True)
def song_run(
    source: Annotated[str, Field(description="An http(s) URL (YouTube, SoundCloud, a direct file), or an audio file on the worker in run_form.source_folders.")],
    dry_run: Annotated[bool, Field(description="Stop at the local video and its upload_request.json; off (only with upload.enabled) uploads what today's budget allows.")] = True,
    generators: Annotated[list[GeneratorName], Field(description="Generators for this run; empty keeps the config file's.")] = [],  # noqa: B006 - a form's default, never mutated
    arrangers: Annotated[str, Field(description="Pop2Piano arrangers: 'all' or composer numbers such as 1,3,20; empty keeps the config file's.")] = "",
    seeds: Annotated[list[int], Field(description="Sampling seeds for Pop2Piano and the random arrangement styles; empty keeps the config file's.")] = [],  # noqa: B006
    out_dir: Annotated[str, Field(description=OUT_DIR_FIELD)] = "out",
    config_file: Annotated[str, Field(description=CONFIG_FILE_FIELD)] = "",
    publish_queue: Annotated[bool, Field(description="Run the publishing queue after the song; the nightly's fan-out turns it off and runs it once at the end.")] = True,
) -> CoverResult:
    """Cover one song, chosen by hand."""
    out_dir, config_file = deployment_files(out_dir=out_dir, config_file=config_file).values()
    config = run_config(config_file, generators, arrangers, seeds)
    source = checked_source(source, config.run_form.source_folders, setting_file(config_file))
    check_publishing(dry_run, config, setting_file(config_file))
    preflight(config)  # a missing soundfont or model: one sentence now, not one failed song after another
    # the song's stages run as this run's own tasks (its logs, artifacts and task runs are on the run a
    # person opened from the form), not in a subflow one click down
    return cover_song.fn(source=source, out_dir=out_dir, config=config, dry_run=dry_run, publish_queue=publish_queue)


@flow(name=NIGHTLY_FLOW, log_prints=True)
def nightly_run(
    playlist: Annotated[str, Field(description="Playlist URL, or a folder or text file in run_form.source_folders; empty: nightly.playlist of the config file.")] = "",
    dry_run: Annotated[bool, Field(description="Never upload; off (only with upload.enabled) uploads what today's budget allows.")] = True,
    max_songs: Annotated[int, Field(ge=0, description="New songs tonight; 0: nightly.max_songs of the config file.")] = 0,
    out_dir: Annotated[str, Field(description=OUT_DIR_FIELD)] = "out",
    config_file: Annotated[str, Field(description=CONFIG_FILE_FIELD)] = "",
) -> NightlyResult:
    """Cover every new song of a playlist, then publish today's share."""
    out_dir, config_file = deployment_files(out_dir=out_dir, config_file=config_file).values()
    config = run_config(config_file, max_songs=max_songs or None)
    entry_folders = None
    if playlist and playlist != config.nightly.playlist:  # the config's own playlist is the config's to name
        playlist = checked_source(playlist, config.run_form.source_folders, setting_file(config_file))
        entry_folders = config.run_form.source_folders  # and so are the files a list of the run's names
    check_publishing(dry_run, config, setting_file(config_file))
    preflight(config)
    return nightly(playlist=playlist or None, out_dir=out_dir, config=config, dry_run=dry_run, config_file=config_file or None,
                   entry_folders=entry_folders)


def deployments(config: CovermillConfig, config_file: str | None, out_dir: str, work_pool: str | None = None) -> list[Any]:
    """The two deployments, parameters defaulting to this machine's files; the nightly on its cron.

    For a work pool the flows are found by module path (covermill.flows.deployments), so a worker
    on any machine with covermill installed can run them; no code is shipped."""
    defaults = {"out_dir": str(Path(out_dir).resolve()), "config_file": str(Path(config_file).resolve()) if config_file else "",
                "dry_run": not config.upload.enabled}
    schedule = config.nightly
    pool = {"work_pool_name": work_pool, "entrypoint_type": EntrypointType.MODULE_PATH} if work_pool else {}
    return [
        song_run.to_deployment(name=SONG_DEPLOYMENT, parameters=defaults, tags=["covermill"],
                               description="Cover one song by hand: pick the source and the generators.", **pool),
        nightly_run.to_deployment(name=NIGHTLY_DEPLOYMENT, parameters={**defaults, "playlist": schedule.playlist or ""},
                                  schedule=Cron(schedule.cron, timezone=schedule.timezone), tags=["covermill"],
                                  description=f"Every new song of the playlist, at {schedule.cron} ({schedule.timezone}).",
                                  **pool),
    ]


def deploy_to_pool(config: CovermillConfig, config_file: str | None, out_dir: str, work_pool: str) -> list[str]:
    """Both deployments registered on `work_pool` (a process pool, created when missing); their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
            except ObjectAlreadyExists:
                pass
    return [str(deployment.apply(work_pool_name=work_pool)) for deployment in deployments(config, config_file, out_dir, work_pool)]
