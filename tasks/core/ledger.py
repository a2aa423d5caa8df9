"""The ledger: one SQLite file in the work folder recording every song, stage, candidate and pick.

It is what makes re-runs cheap and safe: a stage marked done (with its outputs on disk) is
skipped, a run that dies half way resumes from the last finished stage, and (with the upload
stage) a song is never published twice. Records are stored as JSON so the schema stays small.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from covermill.tasks.core.host import NETWORK_FILESYSTEMS, filesystem_type, process_alive
from covermill.tasks.core.records import Candidate, Generated, Ranking, Song, Upload

SCHEMA = """
CREATE TABLE IF NOT EXISTS songs (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL, data TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stages (
    song_id TEXT NOT NULL, stage TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    seconds REAL, updated REAL NOT NULL, PRIMARY KEY (song_id, stage)
);
CREATE TABLE IF NOT EXISTS candidates (
    song_id TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (song_id, id)
);
CREATE TABLE IF NOT EXISTS rankings (
    song_id TEXT PRIMARY KEY, pick TEXT, data TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    song_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_calls (
    day TEXT NOT NULL, method TEXT NOT NULL, calls INTEGER NOT NULL, PRIMARY KEY (day, method)
);
CREATE TABLE IF NOT EXISTS quota_stops (
    day TEXT PRIMARY KEY, reason TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS playlist_entries (
    source TEXT PRIMARY KEY, song_id TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS playlists (
    title TEXT PRIMARY KEY, id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    song_id TEXT NOT NULL, output TEXT NOT NULL, fingerprint TEXT NOT NULL, PRIMARY KEY (song_id, output)
);
CREATE TABLE IF NOT EXISTS claims (
    song_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, expires REAL NOT NULL
);
"""

CLAIM_LEASE_S = 6 * 3600.0  # a claim outlives no publisher by more than this, even on another machine


class State(StrEnum):
    """Where a stage of a song stands (and how a playlist entry ended: done, rejected or failed).

    Stored as its text, so the ledger file reads the same as before the enum existed."""

    DONE = "done"
    FAILED = "failed"
    RUNNING = "running"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    HELD = "held"  # finished but held back from publishing until a person approves it (the identity gate)


GENERATOR_STAGE = "generate:"  # + a generator's name: how that generator fared on the song
APPROVAL_STAGE = "approval"  # upload.approval: a person's answer; only an approved song joins the publishing queue
IDENTITY_STAGE = "identity"  # is the pick nearer its own original than others? held when not
THUMBNAIL_ART_STAGE = "thumbnail:art"  # detail: where the picture came from, or why it is the fallback


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # WAL keeps its index in shared memory, which only processes of one host share: on a folder
        # several machines mount, the rollback journal (and the filesystem's locks) is what works
        self.journal = "DELETE" if filesystem_type(self.path.parent) in NETWORK_FILESYSTEMS else "WAL"
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per call: safe across Prefect's worker threads and processes.
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute(f"PRAGMA journal_mode={self.journal}")
            with db:
                yield db
        finally:
            db.close()

    # ---------------------------------------------------------------- who is publishing a song

    @staticmethod
    def claimant() -> str:
        """This publisher: host, process and thread (two threads of one worker are two publishers)."""
        return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def claim(self, song_id: str, lease_s: float = CLAIM_LEASE_S) -> str | None:
        """Take the song for publishing, in one transaction: None when taken (or already this
        publisher's), else who holds it ("host pid N"). A claim whose process on this host is gone,
        or whose lease ran out, is taken over: a killed publisher holds nothing."""
        me, host, now = self.claimant(), socket.gethostname(), time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # no other publisher reads between our read and our write
            row = db.execute("SELECT owner, host, pid, expires FROM claims WHERE song_id = ?", (song_id,)).fetchone()
            if row is not None and row[0] != me and row[3] > now and not (row[1] == host and not process_alive(row[2])):
                return f"{row[1]} pid {row[2]}"
            db.execute("INSERT INTO claims (song_id, owner, host, pid, expires) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT(song_id) DO UPDATE SET owner=excluded.owner, host=excluded.host, pid=excluded.pid, "
                       "expires=excluded.expires", (song_id, me, host, os.getpid(), now + lease_s))
        return None

    def release(self, song_id: str) -> None:
        """Give the song back (only this publisher's own claim)."""
        with self._connect() as db:
            db.execute("DELETE FROM claims WHERE song_id = ? AND owner = ?", (song_id, self.claimant()))

    def record_song(self, song: Song) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO songs (id, source, title, data, created, updated) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET source=excluded.source, title=excluded.title, "
                "data=excluded.data, updated=excluded.updated",
                (song.id, song.source, song.title, song.model_dump_json(), now, now),
            )

    def song(self, song_id: str) -> Song | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM songs WHERE id = ?", (song_id,)).fetchone()
        return Song.model_validate_json(row[0]) if row else None

    def songs(self) -> list[Song]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM songs ORDER BY created").fetchall()
        return [Song.model_validate_json(r[0]) for r in rows]

    def mark(self, song_id: str, stage: str, state: State, detail: str = "", seconds: float | None = None) -> None:
        """Set a stage's state; `seconds` is the wall time it took (kept for the bench and the gallery)."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO stages (song_id, stage, state, detail, seconds, updated) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(song_id, stage) DO UPDATE SET state=excluded.state, detail=excluded.detail, "
                "seconds=excluded.seconds, updated=excluded.updated",
                (song_id, stage, state, detail, seconds, time.time()),
            )

    def stage_state(self, song_id: str, stage: str) -> tuple[State, str] | None:
        """(state, detail) of one stage of one song, or None when it never started."""
        with self._connect() as db:
            row = db.execute("SELECT state, detail FROM stages WHERE song_id = ? AND stage = ?", (song_id, stage)).fetchone()
        return (State(row[0]), row[1]) if row else None

    def stages(self, song_id: str) -> dict[str, State]:
        with self._connect() as db:
            rows = db.execute("SELECT stage, state FROM stages WHERE song_id = ?", (song_id,)).fetchall()
        return {stage: State(state) for stage, state in rows}

    def stage_seconds(self, song_id: str) -> dict[str, float]:
        """Wall seconds of each finished stage of one song, in the order they finished."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT stage, seconds FROM stages WHERE song_id = ? AND state = ? AND seconds IS NOT NULL ORDER BY updated",
                (song_id, State.DONE),
            ).fetchall()
        return dict(rows)

    def is_done(self, song_id: str, stage: str) -> bool:
        found = self.stage_state(song_id, stage)
        return found is not None and found[0] == State.DONE

    def record_candidates(self, song_id: str, candidates: list[Candidate]) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM candidates WHERE song_id = ?", (song_id,))
            db.executemany(
                "INSERT INTO candidates (song_id, id, data) VALUES (?, ?, ?)",
                [(song_id, c.id, c.model_dump_json()) for c in candidates],
            )

    def record_generated(self, song_id: str, generated: Generated, generators: list[str]) -> None:
        """The candidates, and per generator `generate:<name>`: done, or skipped with its reason."""
        self.record_candidates(song_id, generated.candidates)
        for name in generators:
            if name in generated.skipped:
                self.mark(song_id, GENERATOR_STAGE + name, State.SKIPPED, generated.skipped[name])
            else:
                self.mark(song_id, GENERATOR_STAGE + name, State.DONE)

    def record_thumbnail_art(self, song_id: str, info: Path) -> None:
        """From thumbnail.json: done with Stable Diffusion's seed, or skipped with the fallback's reason."""
        art = json.loads(Path(info).read_text(encoding="utf-8")) if Path(info).exists() else {}
        if art.get("reason"):
            self.mark(song_id, THUMBNAIL_ART_STAGE, State.SKIPPED, f"procedural art: {art['reason']}")
        else:
            seed = f" seed {art['seed']}" if art.get("seed") is not None else ""
            self.mark(song_id, THUMBNAIL_ART_STAGE, State.DONE, f"{art.get('art', 'unknown')}{seed}")

    def generator_outcomes(self, song_id: str) -> dict[str, tuple[str, str]]:
        """generator -> (state, reason) for the song's last generate stage."""
        with self._connect() as db:
            rows = db.execute("SELECT stage, state, detail FROM stages WHERE song_id = ? AND stage LIKE ?",
                              (song_id, GENERATOR_STAGE + "%")).fetchall()
        return {stage[len(GENERATOR_STAGE):]: (state, detail) for stage, state, detail in rows}

    def candidates(self, song_id: str) -> list[Candidate]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM candidates WHERE song_id = ? ORDER BY id", (song_id,)).fetchall()
        return [Candidate.model_validate_json(r[0]) for r in rows]

    def record_ranking(self, song_id: str, ranking: Ranking) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO rankings (song_id, pick, data, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(song_id) DO UPDATE SET pick=excluded.pick, data=excluded.data, updated=excluded.updated",
                (song_id, ranking.pick, ranking.model_dump_json(), time.time()),
            )

    def ranking(self, song_id: str) -> Ranking | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM rankings WHERE song_id = ?", (song_id,)).fetchone()
        return Ranking.model_validate_json(row[0]) if row else None

    # --- what made each kept output (tasks/core/fingerprints.py) -----------------------------------
    def fingerprint(self, song_id: str, output: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT fingerprint FROM fingerprints WHERE song_id = ? AND output = ?", (song_id, output)).fetchone()
        return row[0] if row else None

    def record_fingerprint(self, song_id: str, output: str, made_with: str | None) -> None:
        """What `output` was made with; None forgets it (the output is then unknown, made again)."""
        with self._connect() as db:
            if made_with is None:
                db.execute("DELETE FROM fingerprints WHERE song_id = ? AND output = ?", (song_id, output))
            else:
                db.execute("INSERT OR REPLACE INTO fingerprints (song_id, output, fingerprint) VALUES (?, ?, ?)",
                           (song_id, output, made_with))

    # --- publishing: what reached YouTube, and what today's quota has spent -----------------------
    def upload(self, song_id: str) -> Upload | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM uploads WHERE song_id = ?", (song_id,)).fetchone()
        return Upload.model_validate_json(row[0]) if row else None

    def record_upload(self, song_id: str, upload: Upload) -> None:
        """Written at every step that matters for never-twice: attempt started, session opened, video id."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO uploads (song_id, data, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(song_id) DO UPDATE SET data=excluded.data, updated=excluded.updated",
                (song_id, upload.model_dump_json(), time.time()),
            )

    def uploads(self) -> dict[str, Upload]:
        with self._connect() as db:
            rows = db.execute("SELECT song_id, data FROM uploads").fetchall()
        return {song_id: Upload.model_validate_json(data) for song_id, data in rows}

    def count_call(self, day: str, method: str, calls: int = 1) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO api_calls (day, method, calls) VALUES (?, ?, ?) "
                "ON CONFLICT(day, method) DO UPDATE SET calls = calls + excluded.calls",
                (day, method, calls),
            )

    def calls_on(self, day: str) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT method, calls FROM api_calls WHERE day = ?", (day,)).fetchall()
        return dict(rows)

    def stop_day(self, day: str, reason: str) -> None:
        """YouTube said no more today (quotaExceeded, uploadLimitExceeded): nothing more is tried until tomorrow."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO quota_stops (day, reason, updated) VALUES (?, ?, ?)", (day, reason, time.time()))

    def day_stopped(self, day: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT reason FROM quota_stops WHERE day = ?", (day,)).fetchone()
        return row[0] if row else None

    def playlist_id(self, title: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT id FROM playlists WHERE title = ?", (title,)).fetchone()
        return row[0] if row else None

    def record_playlist(self, title: str, playlist_id: str) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO playlists (title, id) VALUES (?, ?)", (title, playlist_id))

    def forget_playlist(self, title: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM playlists WHERE title = ?", (title,))

    # --- the nightly run's archive: which playlist entries are settled ---------------------------
    def entry(self, source: str) -> tuple[State, str, int] | None:
        """(state, detail, failed attempts) of a playlist entry, or None when never tried."""
        with self._connect() as db:
            row = db.execute("SELECT state, detail, attempts FROM playlist_entries WHERE source = ?", (source,)).fetchone()
        return (State(row[0]), row[1], row[2]) if row else None

    def entries(self) -> list[tuple[str, str, str, str, int]]:
        """Every playlist entry tried: (source, song id or '', state, detail, failed attempts), newest first."""
        with self._connect() as db:
            return db.execute("SELECT source, song_id, state, detail, attempts FROM playlist_entries ORDER BY updated DESC").fetchall()

    def record_entry(self, source: str, state: State, detail: str = "", song_id: str = "") -> None:
        """done (video made), rejected (no candidate passed the ranking) or failed (counted, retried later)."""
        failed = 1 if state == State.FAILED else 0
        with self._connect() as db:
            db.execute(
                "INSERT INTO playlist_entries (source, song_id, state, detail, attempts, updated) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET song_id=CASE WHEN excluded.song_id != '' THEN excluded.song_id ELSE song_id END, "
                "state=excluded.state, detail=excluded.detail, attempts=attempts + excluded.attempts, updated=excluded.updated",
                (source, song_id, state, detail, failed, time.time()),
            )

