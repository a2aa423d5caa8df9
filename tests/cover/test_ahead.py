"""The nightly's next song made ready while the current one runs: downloaded into its folder and
Pop2Piano's beats and features started in its worker, which the song's own generate stage takes."""

from __future__ import annotations

from covermill.models.generator import load_generator
from covermill.tasks.cover.ahead import SongAhead
from covermill.tasks.cover.download import DownloadSettings, download_song
from covermill.tasks.cover.generate import GenerateSettings

from conftest import FEW_TOKENS


def test_the_next_song_is_downloaded_and_its_features_begun_ahead(tiny_model, short_clips, tmp_path):
    generate = GenerateSettings(generators=["basic-pitch", "pop2piano"],
                                options={"pop2piano": {"model": str(tiny_model), "max_new_tokens": FEW_TOKENS, "arrangers": "4", "seeds": [0]}})
    ahead = SongAhead(tmp_path, DownloadSettings(), generate)
    ahead.start(str(short_clips["song_c"]))
    assert ahead.wait() == ["pop2piano"]  # basic-pitch has nothing to start ahead

    song = download_song(str(short_clips["song_c"]), tmp_path, DownloadSettings())  # the song's own run: files found
    generator = load_generator("pop2piano", generate.options_for("pop2piano"))
    assert generator.song_features(song.audio).prefetched

    ahead.start(str(tmp_path / "missing.ogg"))  # a bad entry is left to the song's own run to report
    assert ahead.wait() == []
