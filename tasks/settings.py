"""Base for every stage's settings model: unknown keys are errors, so a typo in config.yaml is caught."""

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
