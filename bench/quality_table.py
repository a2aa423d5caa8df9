"""The quality bench's table: one row per generator/style and per summary row, paper style."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path

from covermill.tasks.core.atomic import write_text
from covermill.tasks.rank.ranking import RankSettings, banging_share

COLUMNS = ["row", "songs", "qmax_median", "qmax_mean", "aligned_median", "identified", "banging", "playable",
           "rgc", "ipe", "wpd", "hands", "note_f1", "picked", "identified_of"]
HEADERS = ["row", "songs", "Qmax median", "Qmax mean", "aligned share median", "identified", "note banging",
           "playable", "RGC median", "IPE median", "WPD median", "two hands", "note F1", "picked"]
KIND_ORDER = {"candidate": 0, "raw": 1, "pick": 2, "oracle": 3, "reference": 4, "control": 5}
# Etude's Table (arXiv 2509.16522, 100 songs), means over songs (the rows above show medians); the two-hand share is not in the
# paper: it is measured here with tasks/rank/fluency.py on the MIDI Etude published for those songs.
REFERENCE_ROWS = {
    "human covers (Etude)": {"rgc": 0.042, "ipe": 10.13, "wpd": 0.49, "hands": 0.993},
    "Etude": {"rgc": 0.020, "ipe": 9.02, "wpd": 0.21, "hands": 0.982},
    "AMT-APC": {"rgc": 0.114, "ipe": 10.69, "wpd": 0.09, "hands": 0.804},
}
REFERENCE_SONGS = 100
REFERENCE_SECONDS = 216.0  # the mean length of those songs; IPE grows one bit per doubling of it


def _qmax(entry) -> float:
    return entry.result.qmax if entry.result else math.inf


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _mean(values: list[float | None]) -> float | None:
    measured = [v for v in values if v is not None]
    return statistics.fmean(measured) if measured else None


def _median(values: list[float | None]) -> float | None:
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def playable(defects: dict[str, float], settings: RankSettings) -> bool:
    return defects.get("polyphony", 0) <= settings.max_polyphony and defects.get("outside_piano", 0) == 0


def row_stats(name: str, entries: list, settings: RankSettings, picked: int | None) -> dict:
    qmaxes = [_qmax(e) for e in entries]
    finite = [q for q in qmaxes if math.isfinite(q)]
    shares = [e.result.aligned_share if e.result else 0.0 for e in entries]
    identified = [e.nearest == e.song for e in entries if e.nearest is not None]
    f1s = [e.f1 for e in entries if e.f1 is not None]
    return {
        "row": name,
        "songs": len(entries),
        "qmax_median": statistics.median(qmaxes) if qmaxes else None,
        "qmax_mean": (statistics.fmean(finite) if len(finite) == len(qmaxes) else math.inf) if qmaxes else None,
        "aligned_median": statistics.median(shares) if shares else None,
        "identified": _share(identified),
        "banging": _share([banging_share(e.defects, settings) > settings.max_run_share if e.defects else False for e in entries]),
        "playable": _share([playable(e.defects, settings) for e in entries]),
        # medians, as the targets are set; a few songs whose beat the tracker lost weigh on a mean
        "rgc": _median([e.rgc for e in entries]),
        "ipe": _median([e.ipe for e in entries]),
        "wpd": _median([e.wpd for e in entries]),
        "hands": _mean([e.two_hand_share for e in entries]),
        "note_f1": statistics.fmean(f1s) if f1s else None,
        "picked": picked,
        "identified_of": len(identified),  # with --identify summary a style row is identified only where it was picked
    }


def reference_rows() -> list[dict]:
    """The published values, as rows of the table (the columns they have no value for stay empty)."""
    return [{**dict.fromkeys(COLUMNS), "row": name, "songs": REFERENCE_SONGS, "identified_of": 0, **values}
            for name, values in REFERENCE_ROWS.items()]


def ipe_note(songs: list) -> str | None:
    """What IPE a human cover of this set's songs would show, since IPE grows with a song's length."""
    seconds = [w.song.duration for w in songs if w.song is not None and w.song.duration > 0]
    if not seconds:
        return None
    median = statistics.median(seconds)
    human = REFERENCE_ROWS["human covers (Etude)"]["ipe"] + math.log2(median / REFERENCE_SECONDS)
    return (f"IPE grows one bit per doubling of a song's length: the reference rows are over songs of "
            f"{REFERENCE_SECONDS:.0f} s on average, so a human cover of this set's median {median:.0f} s would show "
            f"about {human:.2f} bits (what the ranker pulls towards)")


def summarise(songs: list, oracles: dict, settings: RankSettings) -> tuple[list[dict], list[str]]:
    """(table rows, lines of summary under the table) from the bench's scored songs."""
    groups: dict[tuple[int, str], list] = defaultdict(list)
    first_seen: dict[str, int] = {}
    picks = {}
    for work in songs:
        for entry in work.entries:
            first_seen.setdefault(entry.row, len(first_seen))
            groups[(KIND_ORDER[entry.kind], entry.row)].append(entry)
            if work.ranking and entry.candidate_id is not None and entry.candidate_id == work.ranking.pick:
                picks[work.name] = entry
    groups[(KIND_ORDER["pick"], "pick (ranker)")] = list(picks.values())
    groups[(KIND_ORDER["oracle"], "oracle (best accepted Qmax)")] = [o for o in oracles.values() if o is not None]
    picked_rows = defaultdict(int)
    for entry in picks.values():
        picked_rows[entry.row] += 1
    table = [
        row_stats(name, entries, settings, picked_rows[name] if kind == 0 else None)
        for (kind, name), entries in sorted(groups.items(), key=lambda item: (item[0][0], first_seen.get(item[0][1], 0)))
        if entries
    ] + reference_rows()
    notes = [note for note in [ipe_note(songs)] if note]
    regrets = [_qmax(picks[s]) - _qmax(oracles[s]) for s in picks if oracles.get(s) is not None]
    if regrets:
        same = sum(picks[s].candidate_id == oracles[s].candidate_id for s in picks if oracles.get(s) is not None)
        notes.append(f"ranking regret (pick's Qmax - oracle's): median {statistics.median(regrets):.4f}, "
                     f"mean {statistics.fmean(regrets):.4f}; the pick is the oracle in {same} of {len(regrets)} songs")
    unpicked = [w.name for w in songs if not (w.ranking and w.ranking.pick)]
    if unpicked:
        notes.append(f"no pick (every candidate rejected): {', '.join(unpicked)}")
    garbage = [g for w in songs for g in w.garbage]
    if garbage:
        by_kind: dict[str, list[bool]] = defaultdict(list)
        for g in garbage:
            by_kind[g["kind"]].append(g["rejected"] or g["below_good"])
        caught = sum(sum(v) for v in by_kind.values())
        detail = ", ".join(f"{kind} {sum(v)}/{len(v)}" for kind, v in by_kind.items())
        rejected = sum(g["rejected"] for g in garbage)
        notes.append(f"garbage injected into the picks: {caught} of {len(garbage)} rejected or ranked below the pick "
                     f"({rejected} rejected outright; {detail})")
    return table, notes


def _cell(column: str, value) -> str:
    if value is None:
        return "–"
    if column in ("songs", "picked"):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if column in ("identified", "banging", "playable"):
        return f"{value:.0%}"
    if column == "hands":
        return f"{value:.1%}"
    if column in ("qmax_median", "qmax_mean"):
        return f"{value:.4f}"
    if column in ("ipe", "wpd"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def _identified(row: dict) -> str:
    text = _cell("identified", row["identified"])
    return text if row["identified_of"] in (0, row["songs"]) else f"{text} of {row['identified_of']}"


def markdown(table: list[dict], notes: list[str], title: str) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] + ["--:"] * (len(HEADERS) - 1)) + "|"]
    for row in table:
        cells = [_identified(row) if c == "identified" else _cell(c, row[c]) for c in COLUMNS[1:len(HEADERS)]]
        lines.append("| " + " | ".join([row["row"]] + cells) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def write_tables(out: Path, table: list[dict], notes: list[str], title: str) -> str:
    """OUT/quality.md and OUT/quality.csv; returns the Markdown."""
    text = markdown(table, notes, title)
    write_text(out / "quality.md", text)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in table:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    write_text(out / "quality.csv", buffer.getvalue())
    return text
