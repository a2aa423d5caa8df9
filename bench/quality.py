"""Quality bench: how close, recognisable and playable covermill's covers are, paper style.

    python bench/quality.py DATASET_DIR [--out DIR] [--config FILE] [--identify all|summary|none]
                                        [--workers N] [--no-garbage]

DATASET_DIR holds audio files (any format FFmpeg reads), each optionally with a same-named .mid
score. Every song goes through covermill's own generate -> render -> rank path (config.yaml's
settings, or --config), and then every candidate, the ranker's pick, the best candidate by Qmax
(the oracle), the score rendered as piano and a deliberately bad control (the song's commonest
pitch banged for the whole song) is scored with the AMT-APC protocol exactly: notes under 0.08 s
dropped, FluidR3_GM rendering, HPCP at the native 2048-sample hop, no pooling (the ranker pools
long songs; the bench does not).

Columns: median and mean Qmax (lower is closer); the aligned share S/N = 1 / (Qmax * sqrt(N)),
which unlike Qmax does not grow with the song's length; the identification rate (is the song
whose original is nearest by Qmax, among all songs of the set, its own?); the share with the
note-banging defect; the share that is playable (at most rank.max_polyphony keys at once, all
within A0..C8); Etude's fluency measures RGC, IPE and WPD (WPD on the same native-hop chroma,
against the song's own original) as medians over songs and the share of chords two hands can strike
as a mean; Etude's published values (means over its songs) close the table as reference rows; and onset note F1
against the score (mir_eval, 50 ms) where there is one. Below
the table: ranking regret (the pick's Qmax minus the oracle's; the oracle is the best candidate
the ranker accepted), how often the pick is the oracle, and the garbage check: corrupted copies
of each pick (a banged segment, dropouts, random notes, another song stretched to fit) that the
ranker must reject or rank below the pick.

Writes OUT/quality.md, OUT/quality.csv and OUT/details/<song>.json. Transcriptions, renders,
chroma and Qmax values are cached under OUT by content, so a second run (or one resumed after a
crash) only computes what a changed setting changed. `--identify summary` scores only the pick,
oracle, raw transcription, score and control against the other songs (full-length songs take
~15 s per native comparison). `make bench-quality` runs it on one-minute cuts of Debian's
planetblupi recordings.

Example:
    python bench/cut_dataset.py /usr/share/planetblupi/music .cache/quality/clips-60s --seconds 60
    python bench/quality.py .cache/quality/clips-60s --out out/quality/clips-60s
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from covermill.flows.offline import apply_offline_defaults

apply_offline_defaults()

from covermill.flows.config import CovermillConfig, load_config  # noqa: E402
from covermill.models.device import usable_cores  # noqa: E402
from covermill.tasks.core.atomic import write_json  # noqa: E402
from covermill.tasks.core.midi import read_midi, write_midi  # noqa: E402
from covermill.tasks.core.records import Candidate  # noqa: E402
from covermill.tasks.rank.qmax import QmaxResult  # noqa: E402
from covermill.tasks.rank.ranking import rank_candidates  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from garbage import corruptions  # noqa: E402
from quality_cache import Cache, chroma_job, qmax_job, wpd_job  # noqa: E402
from quality_songs import Entry, SongWork, find_songs, note_f1, prepare_song  # noqa: E402
from quality_table import summarise, write_tables  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the native-protocol Qmax of everything

SUMMARY_KINDS = {"raw", "reference", "control"}


def score_all(songs: list[SongWork], cache: Cache, identify: str, workers: int) -> None:
    """Chroma of every original and entry, then Qmax and WPD of each entry against its own original
    (and Qmax, for identification, against every other original), in worker processes; results
    cached as they come."""
    originals = {w.name: (w.original_key, w.folder.audio) for w in songs}
    # which entries face every original: all of them, only the summary rows, or none
    picks = {(w.name, w.ranking.pick) for w in songs if w.ranking}
    summary = {id(e) for w in songs for e in w.entries
               if e.kind in SUMMARY_KINDS or (e.song, e.candidate_id) in picks}

    def targets(entry: Entry) -> list[str]:
        if identify == "all" or (identify == "summary" and id(entry) in summary):
            return list(originals)
        return [entry.song]

    chroma_needed = {key: audio for key, audio in originals.values()}
    chroma_needed.update({e.key: e.audio for w in songs for e in w.entries})
    missing = {k: a for k, a in chroma_needed.items() if not cache.chroma_path(k).exists()}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        if missing:
            log(f"chroma: {len(missing)} recordings")
            for done, future in enumerate(as_completed(
                    [pool.submit(chroma_job, str(a), str(cache.chroma_path(k))) for k, a in missing.items()]), 1):
                future.result()
                if done % 20 == 0 or done == len(missing):
                    log(f"chroma: {done}/{len(missing)}")

        def run(pairs: list[tuple[str, str]]) -> None:
            todo = sorted({p for p in pairs if cache.result(*p) is None})
            if not todo:
                return
            log(f"qmax: {len(todo)} comparisons at the native hop")
            started = time.monotonic()
            futures = {pool.submit(qmax_job, str(cache.chroma_path(c)), str(cache.chroma_path(o))): (c, o) for c, o in todo}
            for done, future in enumerate(as_completed(futures), 1):
                cache.store(*futures[future], QmaxResult(*future.result()))
                if done % 25 == 0 or done == len(todo):
                    cache.save()
                    log(f"qmax: {done}/{len(todo)} ({time.monotonic() - started:.0f} s)")

        # the oracle is only known after the own-song Qmax, so that pass comes first in summary mode
        own = [(e.key, originals[e.song][0]) for w in songs for e in w.entries]
        run(own)
        align(pool, cache, own)
        if identify == "summary":  # the oracle joins the summary rows
            for w in songs:
                oracle = oracle_entry(w, cache)
                if oracle is not None:
                    summary.add(id(oracle))
        run([(e.key, originals[t][0]) for w in songs for e in w.entries for t in targets(e)])
    for work in songs:
        for entry in work.entries:
            entry.result = cache.result(entry.key, work.original_key)
            entry.wpd = cache.wpd(entry.key, work.original_key)
            faced = targets(entry)
            if len(faced) > 1:
                entry.nearest = min(faced, key=lambda t: cache.result(entry.key, originals[t][0]).qmax)


def align(pool: ProcessPoolExecutor, cache: Cache, pairs: list[tuple[str, str]]) -> None:
    """WPD of each (cover, its own original) pair not in the cache yet, in the pool; cached as they come."""
    todo = sorted({p for p in pairs if not cache.has_wpd(*p)})
    if not todo:
        return
    log(f"wpd: {len(todo)} alignments at the native hop")
    futures = {pool.submit(wpd_job, str(cache.chroma_path(c)), str(cache.chroma_path(o))): (c, o) for c, o in todo}
    for done, future in enumerate(as_completed(futures), 1):
        cache.store_wpd(*futures[future], future.result())
        if done % 25 == 0 or done == len(todo):
            cache.save()


def oracle_entry(work: SongWork, cache: Cache) -> Entry | None:
    """The candidate the ranker accepted with the lowest native Qmax."""
    accepted = {s.candidate_id for s in work.ranking.scores if not s.rejected} if work.ranking else set()
    pool = [e for e in work.entries if e.kind == "candidate" and e.candidate_id in accepted]
    if not pool:
        return None
    return min(pool, key=lambda e: (cache.result(e.key, work.original_key) or QmaxResult(math.inf, 0, 0.0)).qmax)


# ---------------------------------------------------------------- garbage injection

def garbage_check(songs: list[SongWork], config: CovermillConfig, cache: Cache) -> None:
    """Corrupt each song's pick in several ways and rank the pick with its corruptions."""
    picked = [w for w in songs if w.ranking and w.ranking.pick]
    for number, work in enumerate(picked):
        good = next(c for c in work.candidates if c.id == work.ranking.pick)
        other = picked[(number + 1) % len(picked)] if len(picked) > 1 else None
        foreign = read_midi(next(c for c in other.candidates if c.id == other.ranking.pick).midi) if other else None
        folder = work.folder.root / "bench" / "garbage"
        candidates, audio = [good], {good.id: cache.audio_for(good.midi)[1]}
        for kind, notes in corruptions(read_midi(good.midi), work.song.duration, foreign).items():
            cid = "garbage-" + kind.replace(" ", "-")
            midi = write_midi(notes, folder / f"{cid}.mid")
            candidates.append(Candidate(id=cid, generator="garbage", style=kind, midi=midi, note_count=len(notes)))
            audio[cid] = cache.audio_for(midi)[1]
        ranking = rank_candidates(work.folder.audio, candidates, audio, config.rank)
        order = [s.candidate_id for s in ranking.scores]
        by_id = {s.candidate_id: s for s in ranking.scores}
        work.garbage = [
            {
                "kind": c.style,
                "rejected": by_id[c.id].rejected,
                "below_good": order.index(c.id) > order.index(good.id),
                "reason": by_id[c.id].reject_reason,
                "qmax": by_id[c.id].qmax,
                "combined": by_id[c.id].combined,
                "good_combined": by_id[good.id].combined,
                "defects": by_id[c.id].defects,
            }
            for c in candidates[1:]
        ]
        caught = sum(g["rejected"] or g["below_good"] for g in work.garbage)
        log(f"garbage {work.name}: {caught}/{len(work.garbage)} rejected or ranked below the pick")


# ---------------------------------------------------------------- details and main

def song_details(work: SongWork, oracle: Entry | None) -> dict:
    def entry_dict(e: Entry) -> dict:
        return {
            "row": e.row, "kind": e.kind, "candidate": e.candidate_id, "midi": str(e.midi),
            "qmax": e.result.qmax if e.result else None, "frames": e.result.frames if e.result else None,
            "aligned_share": e.result.aligned_share if e.result else None,
            "nearest": e.nearest, "f1": e.f1, "defects": e.defects,
            "fluency": {"rgc": e.rgc, "ipe": e.ipe, "wpd": e.wpd, "two_hand_share": e.two_hand_share},
        }

    return {
        "song": work.name, "source": str(work.source), "score": str(work.score) if work.score else None,
        "duration": work.song.duration if work.song else None,
        "pick": work.ranking.pick if work.ranking else None,
        "oracle": oracle.candidate_id if oracle else None,
        "entries": [entry_dict(e) for e in work.entries],
        "ranking": work.ranking.model_dump(mode="json") if work.ranking else None,
        "garbage": work.garbage,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="folder of audio files, each optionally with a same-named .mid")
    parser.add_argument("--out", type=Path, help="where results and caches go (default out/quality/<dataset name>)")
    parser.add_argument("--config", type=Path, help="covermill settings (default ./config.yaml if present)")
    parser.add_argument("--identify", choices=["all", "summary", "none"], default="all",
                        help="which rows face every song's original for the identification rate (default all)")
    parser.add_argument("--workers", type=int, default=0, help="processes for chroma and Qmax (default: every usable core)")
    parser.add_argument("--no-garbage", action="store_true", help="skip the garbage-injection check")
    args = parser.parse_args(argv)
    if not args.dataset.is_dir():
        parser.error(f"{args.dataset} is not a folder")
    config = load_config(args.config)
    out = args.out or Path("out/quality") / args.dataset.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(out / "cache", config)
    songs = find_songs(args.dataset, out)
    workers = args.workers or usable_cores()
    started = time.monotonic()
    for number, work in enumerate(songs, 1):
        log(f"[{number}/{len(songs)}] {work.name}: generate, render, rank")
        prepare_song(work, config, cache)
    score_all(songs, cache, args.identify, workers)
    cache.save()
    for work in songs:
        if work.score is not None:
            reference = read_midi(work.score)
            for entry in work.entries:
                if entry.kind in ("candidate", "raw"):
                    entry.f1 = note_f1(reference, read_midi(entry.midi))
    if not args.no_garbage:
        garbage_check(songs, config, cache)
    oracles = {w.name: oracle_entry(w, cache) for w in songs}
    details_dir = out / "details"
    for work in songs:
        write_json(details_dir / f"{work.name}.json", song_details(work, oracles[work.name]))
    table, notes = summarise(songs, oracles, config.rank)
    markdown = write_tables(out, table, notes, title=f"{args.dataset.name}: {len(songs)} songs")
    print(markdown)
    log(f"done in {time.monotonic() - started:.0f} s; {out / 'quality.md'}, {out / 'quality.csv'}, {details_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
