"""Base for every stage's settings model: unknown keys are errors, so a typo in config.yaml is caught."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def iana_zone(zone: str) -> str:
    """`zone` when it names a time zone (for a field_validator); the error says what to write."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}; use an IANA name such as Europe/Paris") from None
    return zone
