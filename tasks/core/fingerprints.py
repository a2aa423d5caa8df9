"""Fingerprints: which settings and inputs made each kept output, so a changed config re-makes
exactly what depends on the change and nothing else.

A fingerprint is a hash of the settings that decide an output's content and of its inputs (the
song's identity, the digests or fingerprints of the outputs it is made from). The ledger keeps,
per song, the fingerprint each output was made with: a transcription, a candidate's MIDI and
render, and each stage as a whole. An output is reused only when it exists and its recorded
fingerprint equals the one today's config asks for. The record is forgotten before an output is
made and written after it is complete, so a run killed in between leaves the output unknown (made
again), never a new file under an old fingerprint or an old file under a new one.

Fields that change how a stage runs but not what it writes (threads, workers, batch sizes) are
named in their settings class's `RUN_ONLY` and left out, so a bigger machine re-makes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger


def outcome(value: Any) -> Any:
    """`value` as plain JSON data, without the `RUN_ONLY` fields of any settings model inside it."""
    if isinstance(value, BaseModel):
        run_only = getattr(type(value), "RUN_ONLY", frozenset())
        return {name: outcome(getattr(value, name)) for name in type(value).model_fields if name not in run_only}
    if isinstance(value, dict):
        return {str(key): outcome(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [outcome(item) for item in value]
    return to_jsonable_python(value)


def fingerprint(*parts: Any) -> str:
    """A short hash of `parts` (settings models, records, digests, other fingerprints)."""
    text = json.dumps(outcome(list(parts)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def stage_output(name: str) -> str:
    """How the fingerprints name a stage as a whole (its outputs are named by their paths)."""
    return f"stage:{name}"


class Fingerprints:
    """The fingerprints one song's outputs were made with, kept in the work folder's ledger.

    An output is named by its path inside the song folder, or by a stage's name."""

    def __init__(self, ledger: Ledger, folder: SongFolder):
        self.ledger = ledger
        self.folder = folder
        self.song_id = folder.root.name

    @classmethod
    def of(cls, folder: SongFolder) -> Fingerprints:
        """The fingerprints of the song in `folder`, in the ledger of its work folder."""
        return cls(Ledger(ledger_path(folder.root.parent)), folder)

    def _name(self, output: Path | str) -> str:
        return Path(output).relative_to(self.folder.root).as_posix() if isinstance(output, Path) else output

    def recorded(self, output: Path | str) -> str | None:
        return self.ledger.fingerprint(self.song_id, self._name(output))

    def fresh(self, path: Path, wanted: str) -> bool:
        """Whether the file at `path` exists and was made with the fingerprint `wanted`."""
        return path.exists() and self.recorded(path) == wanted

    def forget(self, output: Path | str) -> None:
        self.ledger.record_fingerprint(self.song_id, self._name(output), None)

    def record(self, output: Path | str, made_with: str) -> None:
        self.ledger.record_fingerprint(self.song_id, self._name(output), made_with)

    @contextmanager
    def making(self, output: Path | str, made_with: str) -> Iterator[None]:
        """Forget `output`'s fingerprint, let the block make it, then record `made_with`."""
        self.forget(output)
        yield
        self.record(output, made_with)
