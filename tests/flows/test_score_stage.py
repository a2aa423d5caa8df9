"""The score stage inside a real cover_song run: a broken engraver never fails the song."""

from __future__ import annotations

import copy

import pytest

from covermill.flows.config import CovermillConfig
from covermill.flows.cover_song import cover_song
from covermill.tasks.arrange.styles import DEFAULT_STYLES
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger, State

pytestmark = pytest.mark.server


def test_an_engraver_that_fails_leaves_the_song_done_with_its_musicxml_and_the_reason(prefect_server, short_clips, tmp_path):
    config = CovermillConfig.model_validate({"arrange": {"styles": {"two-hands": copy.deepcopy(DEFAULT_STYLES["two-hands"])}},
                                             "score": {"timeout_s": 0.001},
                                             "gallery": {"base_url": "https://covers.example/gallery"}})
    result = cover_song(source=str(short_clips["song_a"]), out_dir=str(tmp_path), config=config, dry_run=True)
    folder = SongFolder(tmp_path, result.song_id)
    ledger = Ledger(ledger_path(tmp_path))
    assert result.video.is_file() and ledger.is_done(result.song_id, "video")
    state, reason = ledger.stage_state(result.song_id, "score")
    assert state == State.FAILED and "did not finish within score.timeout_s" in reason
    assert folder.score_musicxml.is_file() and not folder.score_pdf.exists()
    page = folder.review_page.read_text(encoding="utf-8")
    assert "score.musicxml" in page and "did not finish within score.timeout_s" in page
    assert "failed at" not in page  # the song is not shown as failed
    description = (folder.metadata).read_text(encoding="utf-8")
    assert "https://covers.example/gallery/" + result.song_id + "/score.musicxml" in description
    assert "score.pdf" not in description
