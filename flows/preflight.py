"""What would fail every song, found before the first: the soundfont every render needs and the
model of each enabled generator. A run or a night stops with one sentence instead of failing each
song the same way (after minutes of another generator's work)."""

from __future__ import annotations

from covermill.flows.config import CovermillConfig
from covermill.models import registry
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.cover.render import check_soundfont


def preflight(config: CovermillConfig) -> None:
    """Raise CovermillError for the first setting no song could get past."""
    check_soundfont(config.render.soundfont)
    for name in config.generate.generators:
        check = getattr(registry.generator_module(name), "check", None)  # what `covermill doctor` asks too
        readiness = check(config.generate.options_for(name)) if check is not None else None
        if readiness is not None and not readiness.ok and not readiness.fetched_on_load:
            fix = readiness.fix or f"{readiness.detail}; reinstall the package that provides it (covermill doctor names it)."
            raise CovermillError(f"generator {name}: {fix}")
