"""Everything the ranker measures on its candidates, in one pool of worker processes.

On a candidate's notes: its defects (tasks/rank/defects.py) and the fluency measures that need no
audio, RGC, IPE and the two-hand share (tasks/rank/fluency.py). On its render: Qmax and WPD from
the same pooled chroma (tasks/rank/qmax.py). The note jobs share the chroma's pool because IPE's
k-means costs 0.07-0.12 s a candidate (600 to 5000 onsets, measured here), about what Qmax itself
costs on a 4-minute song: left to the parent it would add up over 50 candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from covermill.tasks.core.midi import read_midi
from covermill.tasks.rank.defects import measure_defects
from covermill.tasks.rank.fluency import (
    chord_pitches,
    ioi_pattern_entropy,
    rhythmic_grid_consistency,
    two_hand_share,
    unique_onsets,
)
from covermill.tasks.rank.qmax import PROTOCOL, ChromaMeasures, OriginalChroma, compare_and_align_all, worker_pool


class NoteMeasures(NamedTuple):
    defects: dict[str, float]
    rgc: float | None
    ipe: float | None
    two_hand_share: float


def note_measures(midi: Path, duration: float) -> NoteMeasures:
    """Defects and note fluency of one candidate's MIDI over a song of `duration` seconds (a worker job)."""
    notes = read_midi(midi)
    onsets = unique_onsets(notes)
    return NoteMeasures(
        defects=measure_defects(notes, duration),
        rgc=rhythmic_grid_consistency(onsets),
        ipe=ioi_pattern_entropy(onsets),
        two_hand_share=two_hand_share(chord_pitches(notes)),
    )


def measure_candidates(original_samples: np.ndarray, cover_audio: list[Path], midis: list[Path], duration: float,
                       max_frames: int, workers: int = 1) -> tuple[OriginalChroma, list[ChromaMeasures], list[NoteMeasures]]:
    """(the original's chroma, Qmax and WPD of every render in `cover_audio`, the note measures of
    every MIDI in `midis`), both lists in order; in `workers` processes when there is more than one
    render to compare."""
    if workers <= 1 or len(cover_audio) <= 1:
        original, chroma = compare_and_align_all(original_samples, cover_audio, max_frames, protocol=PROTOCOL)
        return original, chroma, [note_measures(midi, duration) for midi in midis]
    with worker_pool(min(workers, len(midis))) as pool:
        notes = [pool.submit(note_measures, midi, duration) for midi in midis]
        original, chroma = compare_and_align_all(original_samples, cover_audio, max_frames, protocol=PROTOCOL, pool=pool)
        return original, chroma, [job.result() for job in notes]
