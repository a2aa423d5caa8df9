"""The small typed records that carry a song through the stages (and into the ledger)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    # inf (a candidate that aligns nowhere) must survive JSON: written as the string "Infinity".
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


class Song(Record):
    """What download learned about a song; `id` names its folder and never comes from the title."""

    id: str
    source: str  # what the user gave: a path or a URL
    source_id: str  # stable identity of the source, e.g. "youtube:dQw4w9WgXcQ" or "file:<sha256>"
    title: str
    artist: str = ""
    genre: str = ""  # from the file's tags or the site, when known (words for the thumbnail prompt)
    duration: float  # seconds
    original: Path  # the downloaded or copied file, untouched
    audio: Path  # the decoded working copy every later stage reads (44.1 kHz WAV)


class Candidate(Record):
    """One piano-cover candidate: a generator's transcription arranged in one style (and seed), or
    a cover a model wrote itself with one arranger token (and sampling seed)."""

    id: str
    generator: str
    style: str
    seed: int | None = None
    arranger: int | None = None  # Pop2Piano's composer number, 1..21
    midi: Path
    note_count: int = 0


class Generated(Record):
    """What the generate stage made: the candidates, and why a generator gave none for this song."""

    candidates: list[Candidate]
    skipped: dict[str, str] = {}  # generator -> reason (e.g. no beat grid for Pop2Piano)


class Fluency(Record):
    """How a candidate plays: Etude's three measures and two-hand playability (tasks/rank/fluency.py).
    None where there is too little to measure. Human covers: RGC 0.042, IPE 10.13 bits over songs of
    216 s on average, WPD 0.49 s, two-hand share 0.993."""

    rgc: float | None = None  # rhythmic grid consistency, lower = steadier grid
    ipe: float | None = None  # IOI pattern entropy, bits; grows with log2 of the number of onsets
    wpd: float | None = None  # warping-path deviation from the original, seconds
    two_hand_share: float = 1.0  # share of onset groups two hands can strike


class Score(Record):
    """How one candidate fared in the ranking; lower `combined` is better, rejected ones sort last and
    candidates outside the identity floor after every one inside it."""

    candidate_id: str
    qmax: float  # AMT-APC protocol, lower is closer to the original; inf when nothing aligns
    aligned_share: float  # 1 / (qmax * sqrt(frames)): length-free, higher is better
    frames: int
    defects: dict[str, float]
    combined: float
    reject_reason: str | None = None
    fluency: Fluency | None = None  # None in rankings made before fluency was measured
    outside_floor: bool = False  # Qmax beyond rank.identity_factor times the best accepted one's

    @property
    def rejected(self) -> bool:
        return self.reject_reason is not None


class Ranking(Record):
    scores: list[Score]  # best first
    pick: str | None  # the winning candidate id, None when every candidate was rejected


class Publication(Record):
    """What the publishing stages made for the winner."""

    title: str
    description: str
    thumbnail: Path
    video: Path
    video_id: str | None = None  # set by the upload stage


class Upload(Record):
    """How far one song's publication got on YouTube; the ledger keeps it so nothing runs twice.

    `started` is written before a session is opened and `session_uri` as soon as the server gives
    one, so a run that died mid-upload resumes that session, and one that died after the last
    chunk finds the finished video (the session's status, or the marker in the channel's uploads)
    instead of uploading again. A song counts as published only once `video_id` is set.
    """

    started: float  # when the first attempt began (epoch seconds)
    media_bytes: int  # the size of the file the session carries: a re-made video needs a new session
    session_uri: str | None = None
    video_id: str | None = None
    day: str = ""  # the Pacific quota day the video was accepted on
    publish_at: str | None = None
    thumbnail_set: bool = False
    playlist_item: str | None = None


# --- what the flows return: one record per flow, so callers read fields rather than dict keys ----

class CoverResult(Record):
    """What cover_song made of one song."""

    song_id: str
    title: str
    folder: Path
    video: Path
    winner_midi: Path
    ranking: Path
    review_page: Path
    pick: str  # the winning candidate's id (a person's pick when upload.approval asked one)
    candidates: int
    approved: bool = True  # False: a person rejected it, or nobody answered; it stays out of the queue
    published: str | None = None  # the YouTube video id, when this run uploaded the song


class PublishResult(Record):
    """What one publishing pass did with today's share of the queue."""

    day: str  # the Pacific quota day
    waiting: int  # videos in the queue when the pass began
    planned: list[str]  # song ids today's budget takes, best first
    published: dict[str, str] = {}  # song id -> video id
    failed: dict[str, str] = {}  # song id -> reason (retried on the next run)
    stopped: str | None = None  # YouTube's reason when it closed the day
    dry_run: bool


class NightlyResult(Record):
    """A night over a playlist: each entry's outcome (source -> one line), then the publishing pass."""

    playlist: str
    done: dict[str, str] = {}
    rejected: dict[str, str] = {}
    failed: dict[str, str] = {}
    settled: dict[str, str] = {}  # done or given up on an earlier night: not tried
    deferred: dict[str, str] = {}  # over tonight's limits, or still on a worker: tried another night
    publish: PublishResult | None = None
    publish_error: str | None = None  # why the publishing pass did not run
