"""The nightly run's settings (config.yaml's `nightly:`): its playlist, its limits and its schedule.

Read by the nightly flow and by the deployments that schedule it; a module of its own because the
root config composes it and the nightly flow imports the root config.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from covermill.tasks.core.settings import Settings, iana_zone


class NightlySettings(Settings):
    playlist: str | None = None  # a playlist URL, a folder of audio files, or a text file of URLs/paths
    max_songs: int = Field(10, ge=1)  # new songs started per night
    max_minutes: float = Field(360.0, gt=0)  # no new song starts after this long
    max_attempts: int = Field(3, ge=1)  # a song that failed on this many nights is left alone (reason kept)
    fan_out: bool = False  # each song a run of the cover-song deployment, shared by a work pool's workers
    cron: str = "0 2 * * *"  # when the nightly deployment runs (`covermill serve` / `covermill deploy`)
    timezone: str = "UTC"  # the cron's zone, an IANA name such as Europe/Paris

    _known_zone = field_validator("timezone")(staticmethod(iana_zone))

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=cron)
        except ValueError:
            raise ValueError(f"{cron!r} is not a cron expression; five fields, e.g. '0 2 * * *' for 02:00 every day") from None
        return cron
