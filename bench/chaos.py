"""Chaos bench: the nightly run with publishing on, SIGKILLed again and again, must still publish
every song exactly once and leave nothing half-written, held or running.

A playlist of short clips cut from real recordings (Debian's planetblupi music) runs through the
real `covermill nightly PLAYLIST --publish` against the tests' fake YouTube on 127.0.0.1. Each
attempt is killed at one point: a random moment, inside a stage (the ledger shows it `running`),
between two stages, while an atomic write is under way in a song folder or the gallery, or on the
fake's side once it has served an upload request and before its answer leaves (a session opened, a
chunk taken, the video complete, the thumbnail set, the playlist entry made). The kill is a
SIGKILL of the command's process group, or of the command alone (as the OOM killer does, leaving
its children behind). The command is started again until a run finishes; passes (fresh work
folders, one Prefect home for all) repeat until --kills kills.

Checked after every kill: no process of the killed command still runs after --orphan-grace
seconds (the runs carry COVERMILL_CHAOS_TAG in their environment, which every child inherits).
Checked after every pass: each song published once (the fake's videos and playlist entries, by the
`covermill:<song id>` marker, with the file's exact bytes); every file of every song folder and of
the gallery decodes (FFmpeg, PIL, pretty_midi, json, XML, PDF); no temporary file left; the ledger has
every stage done and none left running, the fake's video ids, no publish claim; the Prefect `gpu`
limit holds no slot.

    python bench/chaos.py [--kills 50] [--songs 3] [--seconds 20] [--json out/bench/chaos.json]

Examples:

    python bench/chaos.py                         # the full bench: >= 50 kills over 3-song passes
    python bench/chaos.py --kills 8 --songs 2     # a quick look
    python bench/chaos.py --points upload-answer,playlist-answer --kills 6
    python bench/chaos.py --unguarded --kills 6   # the CLI without its orphan guard: the finding it fixes
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

MUSIC = Path("/usr/share/planetblupi/music")
RECORDINGS = ["music004", "music007", "music009", "music002", "music005", "music001"]  # different songs
CHAOS_TAG = "COVERMILL_CHAOS_TAG"  # in every run's environment: children inherit it, so survivors are found
COVERMILL = Path(sys.executable).with_name("covermill")
# The CLI without main()'s orphan guard (tasks/core/orphans.py): what --unguarded runs
UNGUARDED = [sys.executable, "-c", "import sys; from covermill.flows.cli import app; sys.argv[0] = 'covermill'; app()"]
STAGES = ("download", "generate", "render", "rank", "winner", "thumbnail", "video", "upload")
KILLED_STAGES = ("generate", "render", "rank", "winner", "thumbnail", "video", "score", "upload")
TEMPORARY = re.compile(r"^(?:\.[^/]*\.tmp|covermill-[a-z-]+)-[A-Za-z0-9_.]+~\d+-")  # tasks/core/leftovers.py's names

# Kill points on the fake's side: (method, path part, status of the withheld answer)
ANSWERS = {
    "session-open": ("POST", "/upload/youtube/v3/videos", 200),
    "mid-upload": ("PUT", "/upload/session/", 308),
    "upload-answer": ("PUT", "/upload/session/", 200),
    "thumbnail-answer": ("POST", "/upload/youtube/v3/thumbnails/set", 200),
    "playlist-answer": ("POST", "/youtube/v3/playlistItems", 200),
}
POINTS = ("random", "between-stages", "song-write", "gallery-write", "gpu-slot",
          *(f"stage:{s}" for s in KILLED_STAGES), *ANSWERS)


# --- set-up -------------------------------------------------------------------------------------

def cut_clips(folder: Path, songs: int, seconds: float, start: float = 20.0) -> Path:
    """A playlist folder of `songs` OGG clips cut from different recordings."""
    if songs > len(RECORDINGS):
        raise SystemExit(f"at most {len(RECORDINGS)} songs")
    folder.mkdir(parents=True, exist_ok=True)
    for name in RECORDINGS[:songs]:
        target = folder / f"{name}.ogg"
        if not target.exists():
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds),
                            "-i", str(MUSIC / f"{name}.ogg"), "-c:a", "libvorbis", "-q:a", "5", str(target)], check=True)
    return folder


def settings(api_root: str, video_style: str = "falling_notes", width: int = 640, height: int = 360,
             pop2piano: Path | None = None) -> dict:
    """The cheapest real configuration: basic-pitch in two styles (plus a tiny random Pop2Piano, which
    holds the `gpu` slot), a small video, and an upload to the fake in small chunks."""
    generate: dict = {"generators": ["basic-pitch"]}
    if pop2piano is not None:
        generate = {"generators": ["basic-pitch", "pop2piano"],
                    "options": {"pop2piano": {"model": str(pop2piano), "arrangers": "1", "seeds": [0], "max_new_tokens": 48}}}
    return {
        "generate": generate,
        # two of the default styles, both ending with `hands` (the ranking rejects what two hands cannot play)
        "arrange": {"seeds": [0], "styles": {
            "two-hands": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "thin", "max_voices": 6, "min_duration": 0.06},
                          {"step": "quantise"}, {"step": "pace"}, {"step": "hands"}],
            "block-chords": [{"step": "fold"}, {"step": "dynamics", "strength": 0.7}, {"step": "quantise"}, {"step": "melody"},
                             {"step": "accompany", "pattern": "block", "every": "beat"}, {"step": "pace"}, {"step": "hands"}],
        }},
        "video": {"style": video_style, "width": width, "height": height, "fps": 15.0},
        # a leaked slot fails the run within a minute instead of hanging it
        "gpu": {"wait_s": 60, "lease_s": 60},
        # kills must never settle a song as failed for good
        "nightly": {"max_attempts": 1000},
        "upload": {"api_root": api_root, "chunk_kib": 256, "backoff_s": 0.05, "backoff_max_s": 0.2,
                   "quota": {"uploads_per_day": 100}},
    }


def write_token(out: Path, token_uri: str) -> None:
    from google.oauth2.credentials import Credentials

    from covermill.tasks.publish.token_store import AuthSettings, save_credentials, token_path

    credentials = Credentials(token="test-token", refresh_token="refresh-test", token_uri=token_uri,
                              client_id="client-id", client_secret="client-secret")
    save_credentials(credentials, token_path(out, AuthSettings()), authorized_at=time.time())


# --- processes ------------------------------------------------------------------------------------

def tagged(tag: str) -> dict[int, str]:
    """pid -> command line of every process whose environment carries this bench's tag."""
    needle = f"{CHAOS_TAG}={tag}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return {pid: line for pid, line in found.items() if line and _state(pid) != "Z"}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "gone"


def settle(tag: str, grace_s: float) -> tuple[dict[int, str], float]:
    """Wait up to `grace_s` for the killed run's processes to end: (the survivors, which are then
    killed, seconds waited)."""
    started = time.monotonic()
    while time.monotonic() - started < grace_s:
        left = tagged(tag)
        if not left:
            return {}, time.monotonic() - started
        time.sleep(0.2)
    left = tagged(tag)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left, time.monotonic() - started


def short_name(command_line: str) -> str:
    """What an orphan was, in a few words."""
    if "uvicorn" in command_line and "prefect" in command_line:
        return "temporary Prefect server"
    for words, name in (("falling_notes.worker", "falling-notes render worker"), ("multiprocessing", "process-pool worker"),
                        ("core.orphans", "orphan guard"), ("ffmpeg", "ffmpeg"), ("lilypond", "lilypond"),
                        ("fluidsynth", "fluidsynth")):
        if words in command_line:
            return name
    return command_line[:80]


# --- what the ledger and the fake say ------------------------------------------------------------------

def ledger_rows(ledger: Path, query: str, args: tuple = ()) -> list[tuple]:
    if not ledger.exists():
        return []
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(query, args).fetchall()
    except sqlite3.Error:
        return []


def reachable(points: list[str], out: Path, songs: int) -> list[str]:
    """The kill points a new attempt can still meet, from the ledger: a stage some song has not done,
    an upload step some song has not got through."""
    ledger = out / "ledger.sqlite"
    # settled: a failed score (its own failure never fails the song) is not tried again by the next run
    done = collections.Counter(stage for stage, in ledger_rows(ledger, "SELECT stage FROM stages WHERE state IN ('done', 'failed', 'skipped')"))
    known = len(ledger_rows(ledger, "SELECT id FROM songs"))
    uploads = [json.loads(data) for data, in ledger_rows(ledger, "SELECT data FROM uploads")]
    with_video = sum(1 for u in uploads if u.get("video_id"))
    unfinished = known < songs
    found = []
    for point in points:
        if point.startswith("stage:"):
            ok = unfinished or done[point[6:]] < songs
        elif point in ("session-open", "mid-upload", "upload-answer"):
            ok = unfinished or with_video < songs
        elif point == "thumbnail-answer":
            ok = unfinished or sum(1 for u in uploads if u.get("thumbnail_set")) < songs
        elif point == "playlist-answer":
            ok = unfinished or sum(1 for u in uploads if u.get("playlist_item")) < songs
        elif point == "gpu-slot":
            ok = unfinished or done["generate"] < songs
        elif point == "song-write":  # what is written after the video (metadata, upload requests) is too quick to catch
            ok = unfinished or done["video"] < songs
        elif point == "between-stages":
            ok = unfinished or done["upload"] < songs
        else:
            ok = True
        if ok:
            found.append(point)
    return found


# --- one attempt: start the command, kill it at the point ---------------------------------------------

@dataclass
class Attempt:
    point: str | None  # None: left to finish
    mode: str = "group"  # group: the process group; main: the command alone (its children stay)
    killed: bool = False
    code: int | None = None
    seconds: float = 0.0
    orphans: dict[int, str] = field(default_factory=dict)
    settle_s: float = 0.0


class Runner:
    def __init__(self, command: list[str], env: dict, out: Path, fake, log: Path, estimate_s: float, seed: int,
                 prefect_home: Path):
        self.command, self.env, self.out, self.fake, self.log = command, env, out, fake, log
        self.holders = prefect_home / "covermill-gpu-holders"
        self.estimate_s = estimate_s
        self.random = random.Random(seed)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._attempt: Attempt | None = None

    def kill(self) -> bool:
        """SIGKILL the running attempt's command (its group, or itself alone); False when none runs."""
        with self._lock:
            process, attempt = self._process, self._attempt
            if process is None or attempt is None or attempt.killed or process.poll() is not None:
                return False
            attempt.killed = True
            try:
                if attempt.mode == "group":
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                attempt.killed = False
                return False
            return True

    def run(self, attempt: Attempt, timeout_s: float) -> Attempt:
        started_wall = time.time()
        started = time.monotonic()
        with open(self.log, "a") as log:
            log.write(f"\n=== attempt: kill at {attempt.point} ({attempt.mode}) ===\n")
            log.flush()
            process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            with self._lock:
                self._process, self._attempt = process, attempt
            self._arm(attempt.point)
            try:
                self._watch(process, attempt, started, started_wall, timeout_s)
            finally:
                self.fake.before_answer = None
                with self._lock:
                    self._process = None
        attempt.code = process.returncode
        attempt.seconds = time.monotonic() - started
        return attempt

    def _arm(self, point: str | None) -> None:
        if point not in ANSWERS:
            return
        method, part, status = ANSWERS[point]

        def before_answer(asked: str, path: str, answer: int) -> bool:
            return asked == method and part in path and answer == status and self.kill()

        self.fake.before_answer = before_answer

    def _watch(self, process: subprocess.Popen, attempt: Attempt, started: float, started_wall: float, timeout_s: float) -> None:
        point = attempt.point
        deadline = None
        if point == "random":
            deadline = started + self.random.uniform(2.0, self.estimate_s)
        ledger = self.out / "ledger.sqlite"
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout_s:
                attempt.point = f"{point} (timed out)"
                self.kill()
                break
            if deadline is not None and now >= deadline:
                self.kill()
            elif deadline is None and point is not None and point not in ANSWERS and not attempt.killed:
                deadline = self._trigger(point, ledger, started_wall)
            time.sleep(0.02)
        process.wait()

    def _trigger(self, point: str, ledger: Path, since: float) -> float | None:
        """When the point is met: the moment to kill (now, or after a short random delay inside a stage)."""
        if point == "stage:upload":  # the upload records its attempt before it opens a session
            rows = ledger_rows(ledger, "SELECT 1 FROM uploads WHERE updated >= ?", (since,))
            return time.monotonic() + self.random.uniform(0.0, 1.0) if rows else None
        if point.startswith("stage:"):
            rows = ledger_rows(ledger, "SELECT 1 FROM stages WHERE stage = ? AND state = 'running' AND updated >= ?",
                               (point[6:], since))
            return time.monotonic() + self.random.uniform(0.0, 3.0) if rows else None
        if point == "between-stages":
            rows = ledger_rows(ledger, "SELECT 1 FROM stages WHERE state = 'done' AND updated >= ? AND stage != 'download'", (since,))
            return time.monotonic() if rows else None
        if point == "gpu-slot":  # a model call holds the slot (tasks/core/gpu_slot.py marks its holders)
            live = [m for m in self.holders.glob("*/covermill-slot-*") if _state(int(m.name.split("~")[1].split("-")[0])) not in ("gone", "Z")]
            return time.monotonic() if live else None
        if point in ("song-write", "gallery-write"):
            where = [self.out / "gallery"] if point == "gallery-write" else [p for p in self.out.iterdir() if p.is_dir() and p.name != "gallery"]
            for folder in where:
                if folder.is_dir() and any(TEMPORARY.match(p.name) for p in folder.rglob(".*.tmp-*")):
                    return time.monotonic()
        return None


# --- checks after a pass -----------------------------------------------------------------------------

def decodes(path: Path) -> str | None:
    """None when the file reads whole as what its name says, else why not."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".mp4"):
            done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                                  capture_output=True, text=True, timeout=300)
            # the null muxer's complaint about an OGG cut's first timestamps is no decoding error
            errors = [line for line in done.stderr.splitlines() if line.strip() and "non monotonically increasing dts" not in line]
            if done.returncode or errors:
                return f"FFmpeg: {' '.join(errors)[:200] or done.returncode}"
        elif suffix in (".png", ".jpg", ".jpeg"):
            from PIL import Image

            with Image.open(path) as image:
                image.load()
        elif suffix == ".mid":
            import pretty_midi

            pretty_midi.PrettyMIDI(str(path))
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix in (".musicxml", ".xml"):
            import xml.etree.ElementTree as ElementTree

            ElementTree.parse(path)
        elif suffix == ".pdf":
            data = path.read_bytes()
            if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
                return "PDF cut short"
        elif suffix == ".html":
            if "</html>" not in path.read_text(encoding="utf-8").lower():
                return "HTML cut short"
        elif suffix == ".npy":
            import numpy as np

            np.load(path)
        elif path.stat().st_size == 0:
            return "empty"
    except Exception as error:  # noqa: BLE001 - any failure to read is the finding
        return f"{type(error).__name__}: {error}"[:200]
    return None


@dataclass
class PassCheck:
    songs: int = 0
    published: int = 0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    bad_outputs: dict[str, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    ledger_problems: list[str] = field(default_factory=list)
    leaked_slots: int = 0
    files_checked: int = 0

    def failures(self) -> int:
        return (self.duplicates + len(self.lost) + len(self.bad_outputs) + len(self.leftovers)
                + len(self.ledger_problems) + self.leaked_slots)


def check_pass(out: Path, fake, songs: int, tmp: Path, prefect_home: Path) -> PassCheck:
    from covermill.tasks.core.atomic import file_sha256
    from covermill.tasks.core.layout import SongFolder, ledger_path
    from covermill.tasks.core.ledger import Ledger

    check = PassCheck(songs=songs)
    ledger = Ledger(ledger_path(out))
    sources = {file_sha256(Path(song.source)) for song in ledger.songs() if Path(song.source).is_file()}
    known = ledger.songs()
    if len(known) != songs:
        check.ledger_problems.append(f"{len(known)} songs in the ledger, {songs} in the playlist")
    items = collections.Counter(i["snippet"]["resourceId"]["videoId"] for i in fake.playlist_items)
    marked = collections.defaultdict(list)
    for video_id, video in fake.videos.items():
        description = video["metadata"].get("snippet", {}).get("description", "")
        marked[description.rsplit("covermill:", 1)[-1].strip()].append(video_id)
    for song in known:
        videos = marked.get(song.id, [])
        if not videos:
            check.lost.append(song.id)
            continue
        check.published += 1
        check.duplicates += len(videos) - 1 + sum(max(0, items[v] - 1) for v in videos)
        folder = SongFolder(out, song.id)
        if fake.videos[videos[0]]["data"] != folder.video.read_bytes():
            check.bad_outputs[f"{song.id} on YouTube"] = "the uploaded bytes differ from video.mp4"
        upload = ledger.upload(song.id)
        if upload is None or upload.video_id not in videos:
            check.ledger_problems.append(f"{song.id}: the ledger's video id {upload and upload.video_id} is not the fake's {videos}")
        elif not upload.playlist_item or items[upload.video_id] != 1:
            check.ledger_problems.append(f"{song.id}: playlist entry {upload.playlist_item}, {items[upload.video_id]} on YouTube")
        elif not upload.thumbnail_set or upload.video_id not in fake.thumbnails:
            check.ledger_problems.append(f"{song.id}: no thumbnail set")
        stages = ledger.stages(song.id)
        undone = [s for s in STAGES if stages.get(s) != "done"]
        if undone:
            check.ledger_problems.append(f"{song.id}: stages not done: {', '.join(undone)}")
        running = [s for s, state in stages.items() if state == "running"]
        if running:  # a finished run leaves no stage marked as under way
            check.ledger_problems.append(f"{song.id}: stages left running: {', '.join(running)}")
    claims = ledger_rows(ledger_path(out), "SELECT song_id, owner FROM claims")
    if claims:
        check.ledger_problems.append(f"publish claims left: {claims}")
    entries = ledger_rows(ledger_path(out), "SELECT source, state FROM playlist_entries WHERE state != 'done'")
    if entries:
        check.ledger_problems.append(f"playlist entries not done: {entries}")
    for path in sorted(out.rglob("*")):
        if path.is_dir() or path.name.startswith("ledger.sqlite") or path.name == "youtube-token.json":
            continue
        if TEMPORARY.match(path.name):
            check.leftovers.append(str(path.relative_to(out)))
            continue
        check.files_checked += 1
        why = decodes(path)
        if why is None and path.name.startswith("original.") and file_sha256(path) not in sources:
            why = "not a whole copy of its playlist file"
        if why is not None:
            check.bad_outputs[str(path.relative_to(out))] = why
    check.leftovers += [p.name for p in tmp.glob("covermill-*") if TEMPORARY.match(p.name)]
    check.leaked_slots = held_slots(prefect_home)
    return check


def held_slots(prefect_home: Path, name: str = "gpu") -> int:
    """Active slots of the `gpu` limit in the Prefect home's database (the temporary servers' record)."""
    rows = ledger_rows(prefect_home / "prefect.db", "SELECT active_slots FROM concurrency_limit_v2 WHERE name = ?", (name,))
    return int(rows[0][0]) if rows else 0


def free_slots(prefect_home: Path, name: str = "gpu") -> None:
    """What `covermill doctor --reset-gpu-slot` does, so that a leak found does not hang later passes."""
    with sqlite3.connect(prefect_home / "prefect.db", timeout=30) as db:
        db.execute("UPDATE concurrency_limit_v2 SET active_slots = 0 WHERE name = ?", (name,))


# --- a pass and the bench -------------------------------------------------------------------------------

@dataclass
class PassResult:
    number: int
    kills: list[Attempt]
    attempts: int
    wall_s: float  # the command's own time, start to exit, over every attempt (not the bench's waits)
    completed: bool
    check: PassCheck
    failures: list[str] = field(default_factory=list)
    exit_orphans: list[str] = field(default_factory=list)  # left by runs that ended by themselves
    missed: str | None = None  # the point the last attempt was to be killed at, had the run not finished first


@dataclass
class Bench:
    root: Path
    playlist: Path
    songs: int
    prefect_home: Path
    pop2piano: Path | None = None
    video_style: str = "falling_notes"
    unguarded: bool = False
    orphan_grace_s: float = 20.0
    attempt_timeout_s: float = 900.0
    main_share: float = 0.3  # share of kills that hit the command alone, not its group
    seed: int = 0
    estimate_s: float = 120.0
    points: tuple[str, ...] = POINTS
    drawn: set = field(default_factory=set)  # the points drawn since each was last drawn
    passes: list[PassResult] = field(default_factory=list)

    def run_pass(self, plan: list[tuple[str, str]] | None, kills: int, log=print) -> PassResult:
        """One fresh work folder through to a finished run: kill at the (point, mode) of `plan` in
        order (each where still reachable), or at `kills` random reachable points; then checked."""
        import yaml

        from fake_youtube import FakeYouTube

        number = len(self.passes) + 1
        folder = self.root / f"pass-{number:02d}"
        out, tmp = folder / "out", folder / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        rng = random.Random(self.seed * 1000 + number)
        tag = uuid.uuid4().hex
        with FakeYouTube() as fake:
            fake.refresh_tokens.add("refresh-test")
            fake.server.handle_error = lambda *_: None  # a client killed mid-request resets its connection: expected here
            config = folder / "config.yaml"
            config.write_text(yaml.safe_dump(settings(fake.url, self.video_style, pop2piano=self.pop2piano)))
            write_token(out, fake.token_uri)
            env = {**os.environ, "PREFECT_HOME": str(self.prefect_home), "TMPDIR": str(tmp), CHAOS_TAG: tag,
                   "PYTHONUNBUFFERED": "1"}
            env.pop("PREFECT_API_URL", None)
            command = [*(UNGUARDED if self.unguarded else [str(COVERMILL)]), "nightly", str(self.playlist),
                       "--out", str(out), "--config", str(config), "--publish"]
            runner = Runner(command, env, out, fake, folder / "runs.log", self.estimate_s, rng.randrange(1 << 30),
                            self.prefect_home)
            todo = list(plan) if plan is not None else None
            killed: list[Attempt] = []
            exit_orphans: list[str] = []
            attempts, wall, failures, completed, missed = 0, 0.0, [], False, None
            while True:
                point, mode = None, "group"
                if todo is not None:
                    while todo and not reachable([todo[0][0]], out, self.songs):
                        todo.pop(0)
                    point, mode = todo.pop(0) if todo else (None, "group")
                elif len(killed) < kills:
                    choices = reachable(list(self.points), out, self.songs)
                    fresh = [p for p in choices if p not in self.drawn]  # every point before any twice
                    point = rng.choice(fresh or choices) if choices else None
                    self.drawn = set() if len(self.drawn | {point}) == len(self.points) else self.drawn | {point}
                    mode = "main" if rng.random() < self.main_share else "group"
                attempt = runner.run(Attempt(point, mode), self.attempt_timeout_s)
                attempts += 1
                wall += attempt.seconds
                if attempt.killed:
                    attempt.orphans, attempt.settle_s = settle(tag, self.orphan_grace_s)
                    killed.append(attempt)
                    log(f"  pass {number}: killed at {attempt.point} ({attempt.mode}) after {attempt.seconds:.1f} s"
                        + (f"; ORPHANS: {sorted(short_name(c) for c in attempt.orphans.values())}" if attempt.orphans else ""))
                    continue
                orphans, _ = settle(tag, self.orphan_grace_s)
                exit_orphans += [short_name(c) for c in orphans.values()]  # a run that ended by itself left them
                if attempt.code == 0:  # finished (before its kill point came, if it had one)
                    missed = attempt.point
                    completed = True
                    log(f"  pass {number}: finished after {attempts} attempts, {len(killed)} kills, {wall:.1f} s of runs"
                        + (f" (before its kill at {missed})" if missed else ""))
                    break
                failures.append(f"attempt {attempts} (no kill) exited {attempt.code}; see {runner.log}")
                log(f"  pass {number}: {failures[-1]}")
                if len(failures) >= 2:
                    break
            check = check_pass(out, fake, self.songs, tmp, self.prefect_home)
        if check.leaked_slots:
            free_slots(self.prefect_home)
        result = PassResult(number, killed, attempts, wall, completed, check, failures, exit_orphans, missed)
        self.passes.append(result)
        return result


def summary(bench: Bench) -> dict:
    kills = [k for p in bench.passes for k in p.kills]
    clean = [p.wall_s for p in bench.passes if not p.kills and p.completed]
    chaotic = [p for p in bench.passes if p.kills and p.completed]
    orphans = collections.Counter(short_name(c) for p in bench.passes for k in p.kills for c in k.orphans.values())
    orphans += collections.Counter(name for p in bench.passes for name in p.exit_orphans)
    checks = [p.check for p in bench.passes]
    figures = {
        "passes": len(bench.passes), "songs_per_pass": bench.songs, "kills": len(kills),
        "kills_by_point": dict(collections.Counter(k.point.split(" ")[0] for k in kills)),
        "kills_by_mode": dict(collections.Counter(k.mode for k in kills)),
        "recoveries": sum(len(p.kills) for p in bench.passes if p.completed),
        "passes_completed": sum(p.completed for p in bench.passes),
        "published": sum(c.published for c in checks), "songs": sum(c.songs for c in checks),
        "duplicates": sum(c.duplicates for c in checks),
        "lost": sum(len(c.lost) for c in checks),
        "files_checked": sum(c.files_checked for c in checks),
        "bad_outputs": {f"pass {p.number}: {k}": v for p in bench.passes for k, v in p.check.bad_outputs.items()},
        "leftovers": [f"pass {p.number}: {x}" for p in bench.passes for x in p.check.leftovers],
        "ledger_problems": [f"pass {p.number}: {x}" for p in bench.passes for x in p.check.ledger_problems],
        "leaked_slots": sum(c.leaked_slots for c in checks),
        "orphans": sum(orphans.values()),
        "orphans_by_kind": dict(orphans),
        "kills_with_orphans_by_mode": dict(collections.Counter(k.mode for p in bench.passes for k in p.kills if k.orphans)),
        "settle_s_max": round(max((k.settle_s for k in kills), default=0.0), 1),
        "failures": [f"pass {p.number}: {f}" for p in bench.passes for f in p.failures],
        "clean_pass_s": round(sum(clean) / len(clean), 1) if clean else None,
        "chaos_pass_s": round(sum(p.wall_s for p in chaotic) / len(chaotic), 1) if chaotic else None,
        "kills_per_chaos_pass": round(sum(len(p.kills) for p in chaotic) / len(chaotic), 1) if chaotic else None,
    }
    if clean and chaotic:
        extra = figures["chaos_pass_s"] - figures["clean_pass_s"]
        figures["recovery_s_per_pass"] = round(extra, 1)
        figures["recovery_s_per_kill"] = round(extra / figures["kills_per_chaos_pass"], 1)
    figures["ok"] = (figures["duplicates"] == 0 and figures["lost"] == 0 and not figures["bad_outputs"] and not figures["leftovers"]
                     and not figures["ledger_problems"] and figures["leaked_slots"] == 0 and figures["orphans"] == 0
                     and not figures["failures"] and figures["passes_completed"] == figures["passes"])
    return figures


def report(figures: dict) -> str:
    lines = [
        f"{figures['passes']} passes of {figures['songs_per_pass']} songs; {figures['kills']} kills, "
        f"{figures['recoveries']} recovered (the pass then finished)",
        "kills by point: " + ", ".join(f"{k} {v}" for k, v in sorted(figures["kills_by_point"].items())),
        "kills by mode:  " + ", ".join(f"{k} {v}" for k, v in sorted(figures["kills_by_mode"].items()))
        + "  (group: the process group; main: the command alone, as the OOM killer does)",
        f"published {figures['published']} of {figures['songs']} songs; duplicates {figures['duplicates']}, lost {figures['lost']}",
        f"outputs: {figures['files_checked']} files decoded, {len(figures['bad_outputs'])} bad, {len(figures['leftovers'])} temporary files left",
        f"ledger problems {len(figures['ledger_problems'])}; gpu slots left held {figures['leaked_slots']}",
        f"orphan processes {figures['orphans']}" + (f" {figures['orphans_by_kind']}" if figures["orphans"] else "")
        + f"; the slowest kill's processes were gone after {figures['settle_s_max']} s",
    ]
    if figures.get("clean_pass_s") is not None:
        lines.append(f"wall time: a clean pass {figures['clean_pass_s']} s"
                     + (f"; a pass with {figures['kills_per_chaos_pass']} kills {figures['chaos_pass_s']} s: recovery costs "
                        f"{figures['recovery_s_per_kill']} s a kill" if figures.get("chaos_pass_s") is not None else ""))
    for name in ("bad_outputs", "leftovers", "ledger_problems", "failures"):
        items = figures[name].items() if isinstance(figures[name], dict) else figures[name]
        for item in list(items)[:10]:
            lines.append(f"  {name}: {item}")
    lines.append("OK" if figures["ok"] else "FAILED: an invariant broke (see above)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50, help="kills over the whole bench (passes repeat until reached)")
    parser.add_argument("--kills-per-pass", type=int, default=10)
    parser.add_argument("--songs", type=int, default=3, help="songs in the playlist (2-6)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each clip")
    parser.add_argument("--points", help=f"comma-separated kill points to draw from (default all: {', '.join(POINTS)})")
    parser.add_argument("--video-style", default="falling_notes", choices=["falling_notes", "still"])
    parser.add_argument("--no-pop2piano", action="store_true", help="basic-pitch alone: nothing holds the gpu slot")
    parser.add_argument("--main-share", type=float, default=0.3, help="share of kills that hit the command alone")
    parser.add_argument("--unguarded", action="store_true", help="run the CLI without its orphan guard (to see what it fixes)")
    parser.add_argument("--orphan-grace", type=float, default=20.0, help="seconds a killed run's processes get to end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep the work folders here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import shutil
    import tempfile

    points = tuple(args.points.split(",")) if args.points else POINTS
    if set(points) - set(POINTS):
        parser.error(f"unknown kill points {sorted(set(points) - set(POINTS))}; known: {', '.join(POINTS)}")
    root = args.work or Path(tempfile.mkdtemp(prefix="covermill-bench-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        pop2piano = None
        if not args.no_pop2piano:
            from random_pop2piano import save_random_pop2piano

            pop2piano = root / "pop2piano"
            if not (pop2piano / "config.json").exists():
                save_random_pop2piano(pop2piano)
        bench = Bench(root=root, playlist=cut_clips(root / "playlist", args.songs, args.seconds), songs=args.songs,
                      prefect_home=root / "prefect-home", pop2piano=pop2piano, video_style=args.video_style,
                      unguarded=args.unguarded, orphan_grace_s=args.orphan_grace, main_share=args.main_share, seed=args.seed,
                      points=points)
        print(f"work folder {root}; a clean pass first")
        clean = bench.run_pass([], 0)
        bench.estimate_s = max(10.0, clean.wall_s)
        while sum(len(p.kills) for p in bench.passes) < args.kills:
            left = args.kills - sum(len(p.kills) for p in bench.passes)
            bench.run_pass(None, min(args.kills_per_pass, left))
        figures = summary(bench)
        print(report(figures))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            figures["passes_detail"] = [{**asdict(p), "check": asdict(p.check)} for p in bench.passes]
            args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    finally:
        if args.work is None:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if figures["ok"] else 1)


if __name__ == "__main__":
    main()
