"""What each stage of cover_song depends on, as fingerprints (tasks/core/fingerprints.py).

A stage is skipped when its outputs exist and were made with the fingerprint it has today; these
functions are the dependency graph: a stage's fingerprint covers its own settings and the
fingerprints (or digests) of what it reads, so a change reaches exactly the stages downstream of
it. The thumbnail reads only the song, so a new arrangement style never paints a new one.
"""

from __future__ import annotations

from covermill.flows.config import CovermillConfig
from covermill.tasks.core.fingerprints import fingerprint
from covermill.tasks.core.records import Candidate, Song
from covermill.tasks.cover.render import candidate_render_fingerprint, winner_fingerprint


def generate_fingerprint(song: Song, config: CovermillConfig) -> str:
    return fingerprint("generate", song.source_id, config.generate, config.arrange)


def render_fingerprint(candidates: list[Candidate], config: CovermillConfig) -> str:
    # by id: the ledger hands the candidates back sorted, generate in the order it made them
    return fingerprint("render", sorted((c.id, candidate_render_fingerprint(c.midi, config.render)) for c in candidates))


def rank_fingerprint(song: Song, rendered: str, config: CovermillConfig) -> str:
    """`rendered`: the render stage's fingerprint (every candidate's notes and the render settings)."""
    return fingerprint("rank", song.source_id, config.rank, rendered)


def pick_fingerprint(winner: Candidate, config: CovermillConfig) -> str:
    """The winner's render, and what a person approves: the pick and its notes."""
    return winner_fingerprint(winner, config.render)


def identity_fingerprint(winner: Candidate, config: CovermillConfig) -> str:
    return fingerprint("identity", pick_fingerprint(winner, config), config.identity)


def thumbnail_fingerprint(song: Song, config: CovermillConfig) -> str:
    return fingerprint("thumbnail", song.source_id, song.title, song.artist, song.genre, config.thumbnail)


def video_fingerprint(song: Song, winner: Candidate, config: CovermillConfig) -> str:
    return fingerprint("video", pick_fingerprint(winner, config), thumbnail_fingerprint(song, config), config.video)


def score_fingerprint(song: Song, winner: Candidate, config: CovermillConfig) -> str:
    """The score: the winner's notes (its grid and key come with the generate stage's analysis), the header, the settings."""
    return fingerprint("score", pick_fingerprint(winner, config), song.title, song.artist, config.score)
