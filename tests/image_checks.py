"""Second safety checks for the thumbnail tests, named in config as `image_checks:<function>`."""

from __future__ import annotations

from typing import Any


def flag_seeds_0_and_1(image: Any, seed: int) -> str | None:
    return f"test check refused seed {seed}" if seed in (0, 1) else None


def flag_every_seed(image: Any, seed: int) -> str | None:
    return "test check refuses everything"
