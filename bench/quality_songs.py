"""What the quality bench scores, per song: its candidates made by covermill's own generate -> render
-> rank path, its raw transcriptions, its score played on piano and a note-banging control."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cut_dataset import AUDIO_SUFFIXES
from garbage import banged_segment
from quality_cache import Cache

from covermill.flows.config import CovermillConfig
from covermill.models.notes import Note
from covermill.tasks.core.atomic import file_sha256
from covermill.tasks.core.audio import decode_to_wav, probe
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi, write_midi
from covermill.tasks.core.records import Candidate, Ranking, Song
from covermill.tasks.cover.generate import make_candidates
from covermill.tasks.rank.measures import note_measures
from covermill.tasks.rank.qmax import QmaxResult
from covermill.tasks.rank.ranking import rank_candidates


@dataclass
class Entry:
    """One MIDI of one song to be scored: a candidate, the raw transcription, the score or the control."""

    song: str
    row: str
    kind: str  # candidate | raw | reference | control
    midi: Path
    candidate_id: str | None = None
    key: str = ""  # its render's cache key
    audio: Path | None = None
    result: QmaxResult | None = None  # against its own original, native protocol
    nearest: str | None = None  # the song whose original is nearest, when identification ran
    defects: dict[str, float] = field(default_factory=dict)
    f1: float | None = None
    # fluency as the ranker measures it (tasks/rank/fluency.py); WPD against its own original, native hop
    rgc: float | None = None
    ipe: float | None = None
    two_hand_share: float | None = None
    wpd: float | None = None


@dataclass
class SongWork:
    name: str
    source: Path
    score: Path | None
    folder: SongFolder
    song: Song | None = None
    original_key: str = ""
    entries: list[Entry] = field(default_factory=list)
    ranking: Ranking | None = None
    candidates: list[Candidate] = field(default_factory=list)
    garbage: list[dict] = field(default_factory=list)


def find_songs(dataset: Path, out: Path) -> list[SongWork]:
    sources = sorted(p for p in dataset.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not sources:
        raise SystemExit(f"{dataset}: no audio files here (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    names = [p.stem for p in sources]
    if len(set(names)) != len(names):
        raise SystemExit(f"{dataset}: two audio files share a name; each song needs its own stem")
    return [
        SongWork(p.stem, p, p.with_suffix(".mid") if p.with_suffix(".mid").exists() else None, SongFolder(out / "songs", p.stem))
        for p in sources
    ]


def candidate_row(candidate: Candidate) -> str:
    return f"{candidate.generator} {candidate.style}" + (f" s{candidate.seed}" if candidate.seed is not None else "")


def prepare_song(work: SongWork, config: CovermillConfig, cache: Cache) -> None:
    """Decode, transcribe (once), arrange every style afresh, render, and rank as production does."""
    folder = work.folder
    folder.root.mkdir(parents=True, exist_ok=True)
    if not folder.audio.exists():
        decode_to_wav(work.source, folder.audio)
    info = probe(folder.audio)
    work.song = Song(id=work.name, source=str(work.source), source_id=f"bench:{work.name}", title=work.name,
                     duration=info.duration, original=work.source, audio=folder.audio)
    work.original_key = "original-" + file_sha256(folder.audio)[:16]
    # styles may have changed since the last run: arrange again (the transcription is kept)
    shutil.rmtree(folder.candidates_dir, ignore_errors=True)
    work.candidates = make_candidates(work.song, folder, config.generate, config.arrange).candidates
    entries = [Entry(work.name, candidate_row(c), "candidate", c.midi, c.id) for c in work.candidates]
    for generator in config.generate.generators:
        raw = folder.transcription(generator)
        if raw.exists():
            entries.append(Entry(work.name, f"{generator} raw transcription", "raw", raw))
    bench_dir = folder.root / "bench"
    if work.score is not None:
        reference = bench_dir / "reference.mid"
        write_midi(read_midi(work.score), reference)  # every track played on the piano
        entries.append(Entry(work.name, "score as piano", "reference", reference))
    control = bench_dir / "control.mid"
    # the classic failure as a whole cover: the song's commonest pitch struck four times a second throughout
    write_midi(banged_segment(read_midi(folder.transcription(config.generate.generators[0])), info.duration, share=1.0, interval=0.25), control)
    entries.append(Entry(work.name, "control: one note banged", "control", control))
    for entry in entries:
        entry.key, entry.audio = cache.audio_for(entry.midi)
        measured = note_measures(entry.midi, info.duration)
        entry.defects, entry.rgc, entry.ipe, entry.two_hand_share = measured
    work.entries = entries
    audio = {e.candidate_id: e.audio for e in entries if e.kind == "candidate"}
    work.ranking = rank_candidates(folder.audio, work.candidates, audio, config.rank)


def note_f1(reference: list[Note], estimate: list[Note]) -> float:
    """Onset-only note F1 (mir_eval's transcription metric: 50 ms onset tolerance, pitch within 50 cents)."""
    import mir_eval

    if not reference or not estimate:
        return 0.0

    def arrays(notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([[n.start, n.end] for n in notes]), np.array([440.0 * 2 ** ((n.pitch - 69) / 12) for n in notes]))

    ref_i, ref_p = arrays(reference)
    est_i, est_p = arrays(estimate)
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(ref_i, ref_p, est_i, est_p, offset_ratio=None)
    return float(f1)
