"""The review gallery's pages written from a ledger and read as HTML, no browser: upload states,
the score table's fluency columns and floor, an empty folder."""

from __future__ import annotations

import math
from html.parser import HTMLParser

from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import APPROVAL_STAGE, IDENTITY_STAGE, Ledger, State
from covermill.tasks.core.records import Fluency, Ranking, Score, Song, Upload
from covermill.tasks.media.gallery import song_status, write_gallery, write_song_page


def test_upload_states_come_from_the_ledger(tmp_path):
    ledger = Ledger(ledger_path(tmp_path))
    folder = SongFolder(tmp_path, "s1")
    ledger.record_song(Song(id="s1", source="song.ogg", source_id="test:s1", title="s1", duration=25.0,
                            original=folder.original(".ogg"), audio=folder.audio))
    ledger.mark("s1", "video", "running")
    assert song_status(ledger, "s1") == {"kind": "running", "text": "unfinished: video", "url": None}
    ledger.mark("s1", "video", State.DONE)
    assert song_status(ledger, "s1")["text"] == "waiting in the queue"
    ledger.mark("s1", IDENTITY_STAGE, State.HELD, "the pick is nearer to 'x' than to its own original")
    held = song_status(ledger, "s1")
    assert held["kind"] == "held" and "nearer to 'x'" in held["text"] and "covermill approve s1" in held["text"]
    ledger.mark("s1", APPROVAL_STAGE, State.DONE, "approved from the command line")
    assert song_status(ledger, "s1")["text"] == "waiting in the queue"
    ledger.record_upload("s1", Upload(started=1.0, media_bytes=10, session_uri="https://upload.example/session"))
    assert song_status(ledger, "s1")["text"] == "upload started, resumes on the next run"
    ledger.mark("s1", "upload", State.FAILED, "the token was revoked; run `covermill auth`.")
    assert song_status(ledger, "s1") == {"kind": "failed", "text": "upload failed: the token was revoked; run `covermill auth`.", "url": None}
    ledger.record_upload("s1", Upload(started=1.0, media_bytes=10, video_id="abc_DEF-123", publish_at="2025-01-02T10:00:00Z"))
    assert song_status(ledger, "s1") == {"kind": "published", "text": "on YouTube, scheduled for 2025-01-02T10:00:00Z",
                                         "url": "https://youtu.be/abc_DEF-123"}
    ledger.mark("s1", "thumbnail", State.FAILED, "no font has these glyphs")  # a failed stage outranks everything
    assert song_status(ledger, "s1")["text"] == "failed at thumbnail: no font has these glyphs"
    # all candidates rejected: settled, with the ranking's word for it rather than the winner stage's failure
    ledger.record_song(Song(id="s2", source="song.ogg", source_id="test:s2", title="s2", duration=25.0,
                            original=folder.original(".ogg"), audio=folder.audio))
    bad = Score(candidate_id="c1", qmax=math.inf, aligned_share=0.0, frames=10, defects={}, combined=math.inf,
                reject_reason="it has no notes at all")
    ledger.record_ranking("s2", Ranking(scores=[bad], pick=None))
    ledger.mark("s2", "winner", State.FAILED, "every candidate was rejected")
    assert song_status(ledger, "s2") == {"kind": "rejected", "text": "rejected: none of its 1 candidates passed the ranking", "url": None}


class Table(HTMLParser):
    """The header cells and the body rows' cells of the first table of class `scores`."""

    def __init__(self, html: str):
        super().__init__()
        self.head: list[str] = []
        self.rows: list[list[str]] = []
        self._where: str | None = None
        self._cell: list[str] | None = None
        self._in_scores = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "scores") in attrs:
            self._in_scores = True
        elif self._in_scores and tag in ("thead", "tbody"):
            self._where = tag
        elif self._in_scores and tag == "tr" and self._where == "tbody":
            self.rows.append([])
        elif self._in_scores and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_scores = False
        elif self._in_scores and tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.head if self._where == "thead" else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_score_table_shows_fluency_and_the_identity_floor(tmp_path):
    """A ranking as the rank stage writes it, one of its scores from before fluency was measured."""
    ledger = Ledger(ledger_path(tmp_path))
    folder = SongFolder(tmp_path, "s1")
    ledger.record_song(Song(id="s1", source="song.ogg", source_id="test:s1", title="s1", duration=60.0,
                            original=folder.original(".ogg"), audio=folder.audio))
    fluent = Fluency(rgc=0.0412, ipe=8.3147, wpd=0.4861, two_hand_share=0.9876)
    scores = [
        Score(candidate_id="fluent", qmax=0.044, aligned_share=0.6, frames=1300, defects={"notes": 300.0}, combined=0.045,
              fluency=fluent),
        Score(candidate_id="far", qmax=0.09, aligned_share=0.3, frames=1300, defects={"notes": 200.0}, combined=0.08,
              fluency=Fluency(rgc=None, ipe=7.5, wpd=None, two_hand_share=1.0), outside_floor=True),
        Score(candidate_id="old", qmax=0.2, aligned_share=0.1, frames=1300, defects={}, combined=0.2, reject_reason="<b>bad</b>"),
    ]
    ledger.record_ranking("s1", Ranking(scores=scores, pick="fluent"))
    html = write_song_page(tmp_path, ledger, "s1").read_text(encoding="utf-8")
    table = Table(html)
    assert table.head[7:16] == ["Qmax", "aligned share", "defects", "RGC", "IPE", "WPD", "hands", "combined", "verdict"]
    assert [row[10:14] for row in table.rows] == [["0.041", "8.31", "0.49", "98.8%"], ["", "7.50", "", "100.0%"], ["", "", "", ""]]
    assert [row[15] for row in table.rows] == ["pick", "outside the identity floor: far less similar than the closest",
                                               "rejected: <b>bad</b>"]
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "script-src 'none'" in html  # still escaped, still no script


def test_an_empty_folder_gets_an_empty_index(tmp_path):
    index = write_gallery(tmp_path / "out")
    assert "No songs yet" in index.read_text(encoding="utf-8")


def test_pages_show_file_names_not_the_machines_paths(tmp_path):
    """A served gallery must not tell the machine's layout: reasons and sources lose their folders."""
    ledger = Ledger(ledger_path(tmp_path))
    folder = SongFolder(tmp_path, "s1")
    ledger.record_song(Song(id="s1", source="/home/ann/Music/song.ogg", source_id="test:s1", title="s1", duration=25.0,
                            original=folder.original(".ogg"), audio=folder.audio))
    ledger.mark("s1", "render", State.FAILED, "/usr/share/sounds/sf2/Missing.sf2: no such soundfont; set render.soundfont.")
    ledger.record_entry("/home/ann/Music/broken.ogg", State.FAILED, "/home/ann/Music/broken.ogg: not audio; check the file.")
    ledger.record_entry("https://example.com/a/b.ogg", State.FAILED, "https://example.com/a/b.ogg: HTTP Error 404")
    index = write_gallery(tmp_path).read_text(encoding="utf-8")
    page = (tmp_path / "gallery" / "s1" / "review.html").read_text(encoding="utf-8")
    for html in (index, page):
        assert "/home/ann" not in html and "/usr/share" not in html
    assert "Missing.sf2: no such soundfont" in page and "broken.ogg: not audio" in index
    assert "https://example.com/a/b.ogg" in index  # a web address stays whole
