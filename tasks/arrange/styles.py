"""Arrangement styles: turn a dense transcription of a whole band mix into piano one could play.

An instrument-agnostic transcription of a band holds 10-14 simultaneous notes, from the bass guitar
to cymbal overtones. A *step* is a pure function `notes -> notes` with validated parameters; a
*style* is a named list of steps (`[{"step": "fold", "low": 28}, {"step": "thin"}]`). A style
whose steps are all deterministic makes one candidate; one with a random step (humanise) makes one
candidate per seed. The same notes, steps and seed always give the same notes back.

The steps themselves are in steps.py; this module only names, validates and runs them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import Field, ValidationError, field_validator

from covermill.models.notes import Note

# each module registers its step(s) in the registry when imported
from covermill.tasks.arrange import accompany, hands, melody, pedal, quantise, tie  # noqa: F401
from covermill.tasks.arrange.registry import STEPS, Step, StepContext
from covermill.tasks.arrange.steps import tidy
from covermill.tasks.core.music import Piece
from covermill.tasks.core.settings import Settings

StepSpec = dict[str, Any]  # {"step": <name>, <param>: <value>, ...}


# ---------------------------------------------------------------- styles

def parse_step(spec: StepSpec) -> tuple[Step, Settings]:
    """The step a spec names and its validated parameters; one clear error otherwise."""
    if not isinstance(spec, dict) or "step" not in spec:
        raise ValueError(f"an arrangement step must be a mapping with a 'step' key (one of {', '.join(sorted(STEPS))}), got {spec!r}")
    name = spec["step"]
    step = STEPS.get(name)
    if step is None:
        raise ValueError(f"unknown arrangement step {name!r}; known steps: {', '.join(sorted(STEPS))}")
    try:
        params = step.params(**{k: v for k, v in spec.items() if k != "step"})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"arrangement step {name!r}: {problems}") from None
    return step, params


def style_uses_seed(steps: list[StepSpec]) -> bool:
    """Whether a style has a random step, so that each seed gives a different candidate."""
    return any(parse_step(spec)[0].random for spec in steps)


def arrange_piece(notes: list[Note], steps: list[StepSpec], seed: int | None = None, analysis: Any = None) -> Piece:
    """Run a style's steps in order on a transcription; the seed feeds the random steps (and only
    them), and `analysis` (the song's beat grid, melody and chords; tasks/arrange/analysis.py) the
    steps that follow the music. The piece sits on the analysis's grid when there is one."""
    parsed = [parse_step(spec) for spec in steps]
    rng = np.random.default_rng(seed) if seed is not None else None
    grid = getattr(analysis, "grid", None)
    piece = Piece(notes=tidy(list(notes)), grid=grid)
    for step, params in parsed:
        if step.random and rng is None:
            raise ValueError(f"arrangement step {step.name!r} is random and needs a seed")
        piece = step.apply(piece, params, StepContext(analysis=analysis, rng=rng if step.random else None))
        piece = replace(piece, notes=tidy(piece.notes))
    return piece


def arrange(notes: list[Note], steps: list[StepSpec], seed: int | None = None, analysis: Any = None) -> list[Note]:
    """The notes of arrange_piece (for callers that need no pedal or grid)."""
    return arrange_piece(notes, steps, seed, analysis).notes


# Chosen on the quality bench (bench/README.md): every style ends playable (piano range, at most
# eight keys at once) and the first two gave the closest covers; the others are different takes
# (simpler, pedalled, humanised) the ranking may prefer on another song.
_PIANIST: list[StepSpec] = [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "quantise"}, {"step": "melody"}]
# Paced to at most 32 notes struck a second, then a hand for every note.
_HANDS: list[StepSpec] = [{"step": "pace"}, {"step": "hands"}]

DEFAULT_STYLES: dict[str, list[StepSpec]] = {
    # Faint inner voices brought up to be heard, then six keys at most: the closest on the bench.
    "balanced": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "thin", "max_voices": 6, "min_duration": 0.06}],
    "rich": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "thin", "max_voices": 8}],
    "thinned": [{"step": "fold"}, {"step": "thin", "max_voices": 8}],
    "sparse": [{"step": "fold"}, {"step": "thin", "max_voices": 4, "min_velocity": 30, "min_duration": 0.1}],
    "melody-bass": [{"step": "fold"}, {"step": "melody_bass"}],
    # Notes ring on to the next chord, then thinning keeps it to six keys down at once.
    "pedal": [{"step": "fold"}, {"step": "sustain"}, {"step": "thin", "max_voices": 6}],
    "humanised": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "thin", "max_voices": 6}, {"step": "humanise"}],
    # The closest style made playable: on the grid, every chord within two hands' reach (octave-folded
    # rather than dropped). On the tuning songs: median aligned share 0.62 (balanced 0.65), RGC 0.027
    # (0.037), every chord playable (96-99 %).
    "two-hands": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "thin", "max_voices": 6, "min_duration": 0.06},
                  {"step": "quantise"}, *_HANDS],
    # Styles a pianist would recognise: on the song's beat grid, the tune on top, the left hand
    # rebuilt from the harmony, two hands. The harmony is read every beat: on the tuning songs that
    # kept more of the song than every half-bar (median aligned share 0.60 against 0.55 for broken
    # chords, 0.54 against 0.51 for arpeggios). Only the ballad is pedalled: the pedal rings a
    # transcription's stray notes through the beat, and on the tuning songs it cost every style
    # about 0.1 of median aligned share (two-hands 0.62 -> 0.52, ballad 0.49 -> 0.46), however
    # often it was changed.
    "ballad": [*_PIANIST, {"step": "accompany", "pattern": "broken", "every": "beat"}, *_HANDS, {"step": "pedal"}],
    "pop-arpeggio": [*_PIANIST, {"step": "accompany", "pattern": "arpeggio", "every": "beat"}, *_HANDS],
    "block-chords": [*_PIANIST, {"step": "accompany", "pattern": "block", "every": "beat"}, *_HANDS],
    "melody-octaves": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "quantise"},
                       {"step": "melody", "octave_below": True}, {"step": "accompany", "pattern": "octaves", "every": "beat"},
                       *_HANDS],
}

STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # part of candidate file names


class ArrangeSettings(Settings):
    styles: dict[str, list[StepSpec]] = Field(default_factory=lambda: copy.deepcopy(DEFAULT_STYLES))
    seeds: list[int] = Field(default_factory=lambda: [0, 1])

    @field_validator("styles")
    @classmethod
    def _known_steps(cls, styles: dict[str, list[StepSpec]]) -> dict[str, list[StepSpec]]:
        if not styles:
            raise ValueError("at least one arrangement style is needed (an empty list of steps keeps the transcription as it is)")
        for name, steps in styles.items():
            if not STYLE_NAME.match(name):
                raise ValueError(f"style name {name!r} must be letters, digits, '-' or '_' (it names files)")
            for spec in steps:
                try:
                    parse_step(spec)
                except ValueError as exc:
                    raise ValueError(f"style {name!r}: {exc}") from None
        return styles

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("at least one seed is needed for the random styles")
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
        return seeds

    def variants(self) -> list[tuple[str, int | None]]:
        """(style, seed) of every candidate a transcription gives: one per seed for random styles."""
        return [
            (style, seed)
            for style, steps in self.styles.items()
            for seed in (self.seeds if style_uses_seed(steps) else [None])
        ]
