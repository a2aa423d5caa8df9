"""The quality bench's corpus: real recordings from Debian packages, each with a genre and a split.

    python bench/corpus.py                   # the corpus, song by song, and its counts
    python bench/corpus.py --by-genre OUT    # a quality.py run's pick, per genre (reads OUT/details/*.json)

The defaults were tuned on planetblupi alone. To report honestly, the songs are split in two:
`tune` (the settings may be chosen on these) and `heldout` (only ever reported on). Every genre sits
in both splits; planetblupi, the historic tuning set and the only one with MIDI scores, is all `tune`.
`bench/cut_corpus.py` cuts a split into a folder for `bench/quality.py` (`make bench-quality-heldout`).

Each song names the Debian package that installs it, the file (and, for the .pk3 zip archives of
nexuiz and ufoai, the member inside it), a genre, and the start second of a representative minute:
where the one-second loudness's 10th percentile over the next 60 s is highest, the earliest such
window on a 5 s grid unless a later one is over 1 dB louder (no silent intros or fade-outs). Genres
were judged without listening, from the files' tags and composers, the spectrum (distortion and
drums against sustained pads) and the onset rate; "ambient" means sustained pads or drones with
under ~1 onset a second, or very quiet and sparse, the tracks where a transcriber finds few notes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("planetblupi-music-ogg", "planetblupi-music-midi", "fb-music-high", "drascula-music", "nexuiz-music",
            "ufoai-music", "wesnoth-1.16-music")
GENRES = ("orchestral", "electronic", "rock", "ambient", "game-synth")
SPLITS = ("tune", "heldout")

PLANETBLUPI = "/usr/share/planetblupi/music"
WESNOTH = "/usr/share/games/wesnoth/1.16/data/core/music"
DRASCULA = "/usr/share/scummvm/drascula/audio"  # de/ en/ es/ fr/ it/ hold the same files again
NEXUIZ = "/usr/share/games/nexuiz/data/music.pk3"
UFOAI = "/usr/share/games/ufoai/base/0music.pk3"
FROZEN_BUBBLE = "/usr/share/games/frozen-bubble/snd/frozen-mainzik-2p.xm"


@dataclass(frozen=True)
class Song:
    name: str  # the cut's file stem: unique, [a-z0-9-]
    package: str  # the Debian package that installs `path`
    path: str  # the file the package installs
    genre: str
    start: float  # seconds into the recording where the representative minute begins
    split: str  # "tune" or "heldout"
    member: str | None = None  # the recording inside `path` when `path` is a zip archive (.pk3)


def _planetblupi(number: int) -> Song:
    # the clips `make bench-quality` has always cut (bench/cut_dataset.py --start 30), with their MIDI
    return Song(f"planetblupi-music{number:03d}", "planetblupi-music-ogg", f"{PLANETBLUPI}/music{number:03d}.ogg",
                "game-synth", 30, "tune")


def _wesnoth(stem: str, genre: str, start: float, split: str) -> Song:
    return Song(f"wesnoth-{stem.replace('_', '-')}", "wesnoth-1.16-music", f"{WESNOTH}/{stem}.ogg", genre, start, split)


def _nexuiz(stem: str, genre: str, start: float, split: str) -> Song:
    return Song(f"nexuiz-{stem}", "nexuiz-music", NEXUIZ, genre, start, split, f"sound/cdtracks/{stem}.ogg")


def _ufoai(stem: str, genre: str, start: float, split: str) -> Song:
    return Song(f"ufoai-{stem.lower().replace('_', '-')}", "ufoai-music", UFOAI, genre, start, split, f"music/{stem}.ogg")


def _drascula(number: int, genre: str, start: float, split: str) -> Song:
    return Song(f"drascula-track{number:02d}", "drascula-music", f"{DRASCULA}/track{number}.ogg", genre, start, split)


# The recordings run from 78 s (ufoai ufo2) to 29 minutes (planetblupi); the 210 s cuts take the
# shorter ones whole (bench/cut_corpus.py says which).
SONGS: tuple[Song, ...] = (
    *(_planetblupi(n) for n in range(10)),
    # orchestral: Wesnoth's OST (tagged "Romantic Classical"), UFO:AI's Vanethian themes
    _wesnoth("battle", "orchestral", 80, "heldout"),
    _wesnoth("casualties_of_war", "orchestral", 70, "heldout"),
    _wesnoth("heroes_rite", "orchestral", 45, "heldout"),
    _wesnoth("knalgan_theme", "orchestral", 175, "heldout"),
    _wesnoth("northerners", "orchestral", 45, "heldout"),
    _wesnoth("traveling_minstrels", "orchestral", 75, "heldout"),
    _wesnoth("the_dangerous_symphony", "orchestral", 20, "heldout"),
    _ufoai("van_theme", "orchestral", 15, "heldout"),
    _wesnoth("breaking_the_chains", "orchestral", 30, "tune"),
    _wesnoth("loyalists", "orchestral", 15, "tune"),
    _ufoai("van_geoscape", "orchestral", 185, "tune"),
    # electronic: elysis, Parapraxis (tagged Electronic) for Nexuiz; UFO:AI's Slippycurb, Skaven-style dawn, ufo2
    _nexuiz("brainsukker", "electronic", 310, "heldout"),
    _nexuiz("calling-bogus", "electronic", 65, "heldout"),
    _nexuiz("digital-pursuit", "electronic", 50, "heldout"),
    _nexuiz("neuronal-diving", "electronic", 210, "heldout"),
    _nexuiz("northern-lights", "electronic", 50, "heldout"),
    _ufoai("TheThings-Slippycurb", "electronic", 95, "heldout"),
    _ufoai("dawn", "electronic", 20, "heldout"),
    _nexuiz("breakdown-easy", "electronic", 355, "tune"),
    _nexuiz("chaos-fog", "electronic", 155, "tune"),
    _ufoai("ufo2", "electronic", 5, "tune"),
    # rock: distorted, broadband, drum-driven (UFO:AI's David Reeves and "Marine" tracks, blkrbt for Nexuiz);
    # sixtyfour_ and sixtyfour_revisited are one tune: left out, so it cannot sit in both splits
    _ufoai("David02", "rock", 95, "heldout"),
    _ufoai("David04", "rock", 0, "heldout"),
    _ufoai("Marine02", "rock", 35, "heldout"),
    _ufoai("MarineUrbanWarfare", "rock", 55, "heldout"),
    _nexuiz("ninesix", "rock", 0, "heldout"),
    _nexuiz("stairs", "rock", 30, "heldout"),
    _ufoai("David01", "rock", 60, "tune"),
    _ufoai("Marine01", "rock", 25, "tune"),
    _nexuiz("brokenlight", "rock", 45, "tune"),
    # ambient: pads, drones, a choir; 0.1-1 onsets a second, or quiet and sparse (Psymong)
    _wesnoth("the_deep_path", "ambient", 0, "heldout"),
    _wesnoth("nunc_dimittis", "ambient", 60, "heldout"),
    _ufoai("Crystan-LooseGame", "ambient", 0, "heldout"),
    _ufoai("van_mission3", "ambient", 140, "heldout"),
    _ufoai("karlmacklin_geoscape", "ambient", 0, "heldout"),
    _ufoai("PsymongO5", "ambient", 90, "heldout"),
    _ufoai("PsymongN3", "ambient", 85, "heldout"),
    _drascula(26, "ambient", 30, "heldout"),
    _wesnoth("into_the_shadows", "ambient", 20, "tune"),
    _ufoai("Crystan-Geosphere03", "ambient", 10, "tune"),
    _ufoai("PsymongR2", "ambient", 145, "tune"),
    # game-synth: sequenced game music (General MIDI, a tracker module): planetblupi above, Drascula (1996),
    # Frozen Bubble's FastTracker 2 module (FFmpeg plays it through libopenmpt)
    Song("frozen-bubble-mainzik-2p", "fb-music-high", FROZEN_BUBBLE, "game-synth", 25, "heldout"),
    _drascula(1, "game-synth", 5, "heldout"),
    _drascula(2, "game-synth", 90, "heldout"),
    _drascula(23, "game-synth", 65, "heldout"),
    _drascula(16, "game-synth", 0, "tune"),
    _drascula(24, "game-synth", 0, "tune"),
)


def select(split: str = "all", genres: list[str] | None = None) -> list[Song]:
    """The corpus's songs of one split ("tune", "heldout" or "all"), optionally of some genres only."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {split!r}")
    return [s for s in SONGS if (split == "all" or s.split == split) and (not genres or s.genre in genres)]


def counts() -> str:
    lines = []
    for split in SPLITS:
        chosen = select(split)
        genres = Counter(s.genre for s in chosen)
        packages = Counter(s.package for s in chosen)
        lines.append(f"{split}: {len(chosen)} songs; " + ", ".join(f"{g} {genres[g]}" for g in GENRES)
                     + "; " + ", ".join(f"{p} {n}" for p, n in sorted(packages.items())))
    return "\n".join(lines)


# ---------------------------------------------------------------- a quality.py run, per genre

def pick_figures(details: dict) -> dict | None:
    """The ranker's pick of one song of a quality.py run: Qmax, aligned share and whether it was identified."""
    pick = details.get("pick")
    entry = next((e for e in details.get("entries", []) if e.get("kind") == "candidate" and e.get("candidate") == pick), None)
    if entry is None:
        return None
    return {"qmax": entry.get("qmax"), "aligned_share": entry.get("aligned_share") or 0.0,
            "identified": entry["nearest"] == details["song"] if entry.get("nearest") else None}


def by_genre(out: Path) -> str:
    """Per split and genre: songs, the pick's identification rate, median aligned share, median Qmax."""
    by_name = {s.name: s for s in SONGS}
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted((out / "details").glob("*.json")):
        details = json.loads(path.read_text())
        song = by_name.get(details.get("song"))
        figures = pick_figures(details)
        if song is None:
            continue
        groups[(song.split, song.genre)].append(figures or {"qmax": None, "aligned_share": 0.0, "identified": False})
    if not groups:
        raise SystemExit(f"{out}/details holds no song of the corpus")
    lines = ["| split | genre | songs | pick identified | pick aligned share median | pick Qmax median |",
             "|---|---|--:|--:|--:|--:|"]
    for split in SPLITS:
        rows = [(g, groups[(split, g)]) for g in GENRES if groups.get((split, g))]
        every = [f for _, fs in rows for f in fs]
        for genre, figures in [*rows, ("all", every)] if rows else []:
            known = [f["identified"] for f in figures if f["identified"] is not None]
            qmaxes = [f["qmax"] if f["qmax"] is not None else float("inf") for f in figures]
            identified = f"{sum(known) / len(known):.0%}" if known else "–"
            lines.append(f"| {split} | {genre} | {len(figures)} | {identified} | "
                         f"{statistics.median(f['aligned_share'] for f in figures):.3f} | {statistics.median(qmaxes):.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--by-genre", type=Path, metavar="OUT", help="a bench/quality.py --out folder to break down per genre")
    args = parser.parse_args(argv)
    if args.by_genre:
        print(by_genre(args.by_genre))
        return 0
    for song in SONGS:
        where = f"{song.path}:{song.member}" if song.member else song.path
        print(f"{song.split:8} {song.genre:11} {song.start:5.0f}  {song.name:32} {where}")
    print(counts())
    return 0


if __name__ == "__main__":
    sys.exit(main())
