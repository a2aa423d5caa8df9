"""The bad-input corpus: every kind of bad input, met the way a user meets it, through the real
`covermill` command. Each is answered with one sentence on stderr that names the input and what to
do ("covermill: <input>: ...; <what to do>."), never a traceback; the good song of the same run is
finished; nothing is written outside the work folder.

One `covermill run --dry-run` takes every bad source at once, beside one good 10 s song whose tags
carry the hostile titles (the `corpus` fixture); each kind is a test reading what that run left:
its stderr lines, the ledger, the work folder. What stops a command before any song (config.yaml,
the work folder) is one quick command each; a full disk is a run of its own under a file size
limit, a playlist with duplicates a nightly run over the corpus's work folder.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from wand.image import Image

from covermill.tasks.core.audio import probe
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.records import Song
from covermill.tasks.media.lettering import layout_text
from covermill.tasks.media.metadata import TITLE_MAX_CHARS
from covermill.tasks.media.thumbnail import ThumbnailSettings, make_thumbnail

from conftest import MUSIC_DIR
from helpers import http_server

COVERMILL = str(Path(sys.executable).with_name("covermill"))

# The good song's tags carry every hostile kind of title at once; the kinds the YouTube title keeps
# come first (the title template keeps about 58 characters of a song's title).
TITLE = ("@/etc/passwd <script> \x1b[31m\x07桜の季節 Привет مرحبا $(touch x) ../../x" + " la" * 200)[:499] + "!"
ARTIST = "%[pixel:p]"
CONTROLS = ("\x1b", "\x07")

# kind -> what its one sentence must say (after "covermill: <source>: "): what is wrong, and what to do
BAD_SOURCES = {
    "empty-file": ("the file is empty (0 bytes)", "; give an audio file."),
    "truncated-audio": ("of its 10.0 s could be decoded, under the 5 s minimum", "; the file seems cut short, give the complete file."),
    "corrupt-audio": ("FFmpeg could not decode the audio", "; check that the file is not damaged."),
    "text-file-named-mp3": ("FFmpeg cannot read this file as audio", "; give an audio file (mp3, ogg, wav, flac, m4a, ...)."),
    "half-a-second-of-audio": ("the audio lasts 0.5 s, under the 5 s minimum", "; give a longer recording."),
    "silence-only": ("no generator found any notes, the audio seems to hold no music", "; give a recording with music in it."),
    "three-hours-over-the-cap": ("the song lasts 180.0 min, over the 20.0 min limit",
                                 "; raise download.max_duration_s in config.yaml to allow it."),
    "video-without-audio": ("the file has no audio stream", "; give an audio file."),
    "dead-url": ("could not download (", "Connection refused", "; check the address and that it is reachable."),
    "http-404": ("could not download (", "HTTP Error 404", "; check the address and that it is reachable."),
    "http-500": ("could not download (", "HTTP Error 500", "; check the address and that it is reachable."),
    "file-url": ("not downloaded, it points to a non-web address (file:), and only http and https are fetched",
                 "; give an http(s) URL, or a local file by its path."),
    "ftp-url": ("not downloaded, it points to a non-web address (ftp:), and only http and https are fetched",
                "; give an http(s) URL, or a local file by its path."),
    "private-network-address": ("not downloaded, it points to 10.255.255.1, a private-network address",
                                "; add 10.255.255.1 to download.allow_private in config.yaml if you mean it."),
    "cloud-metadata-address": ("not downloaded, it points to 169.254.169.254, a link-local address (where a cloud's metadata "
                               "service answers)", "; add 169.254.169.254 to download.allow_private in config.yaml if you mean it."),
    "loopback-address-not-allowed": ("not downloaded, it points to 127.0.0.2, a loopback address (this machine)",
                                     "; add 127.0.0.2 to download.allow_private in config.yaml if you mean it."),
}

# util-linux's prlimit and setpriv (in every Debian) start the command under a file size limit (a
# write past it fails with EFBIG, as a write to a full disk fails with ENOSPC), and, for root,
# without the capabilities that override permission bits (root writes into a mode 555 folder otherwise).
WITHOUT_PERMISSION_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def covermill(root: Path, *args: str, api: str | None = None, file_size: int = 0,
              obey_permissions: bool = False) -> subprocess.CompletedProcess:
    """The real `covermill` command, started as a user would from an empty folder (root/cwd), with a
    TMPDIR of its own (root/tmp); `api` is the Prefect server its flows report to."""
    for folder in ("cwd", "tmp"):
        (root / folder).mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(root / "tmp")}
    env.pop("PREFECT_API_URL", None)
    if api:
        env["PREFECT_API_URL"] = api
    command = [COVERMILL, *args]
    if file_size:
        command = ["prlimit", f"--fsize={file_size}", *command]
    if obey_permissions and os.geteuid() == 0:
        command = [*WITHOUT_PERMISSION_OVERRIDE, *command]
    return subprocess.run(command, cwd=root / "cwd", env=env, capture_output=True, text=True, timeout=600)


def sentences(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_sentence(result: subprocess.CompletedProcess, exit_code: int, *needles: str) -> str:
    """The command's only stderr line, which says every needle; no traceback anywhere."""
    assert result.returncode == exit_code, result.stdout[-3000:] + result.stderr
    lines = sentences(result)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert lines[0].startswith("covermill: ") and lines[0].endswith(".")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def ffmpeg(*args: object) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: (size, mtime), to show nothing there was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


class Answers(http.server.SimpleHTTPRequestHandler):
    """Serves its folder; /error.ogg is a broken server's 500."""

    def send_head(self):  # what GET and HEAD answer with
        if self.path.startswith("/error"):
            self.send_error(500, "Internal Server Error")
            return None
        return super().send_head()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of bad inputs (and the good hostile.ogg), cut from a real recording or made by FFmpeg."""
    folder = tmp_path_factory.mktemp("inputs")
    scratch = tmp_path_factory.mktemp("scratch")
    music = MUSIC_DIR / "music004.ogg"
    ffmpeg("-ss", 20, "-t", 10, "-i", music, "-c:a", "libvorbis", "-q:a", 5, "-metadata", f"title={TITLE}",
           "-metadata", f"artist={ARTIST}", folder / "hostile.ogg")
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "text.mp3").write_text("These are the lyrics, not the song.\n" * 40)
    ffmpeg("-ss", 20, "-t", 10, "-i", music, "-c:a", "libmp3lame", "-b:a", "128k", scratch / "whole.mp3")
    whole = (scratch / "whole.mp3").read_bytes()
    (folder / "truncated.mp3").write_bytes(whole[: len(whole) // 3])  # a copy cut short: its header still says 10 s
    (folder / "corrupt.mp3").write_bytes(whole[:2000] + random.Random(17).randbytes(len(whole) - 2000))  # header, then noise
    ffmpeg("-ss", 20, "-t", 0.5, "-i", music, folder / "half-second.ogg")
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", 10, "-c:a", "libvorbis", folder / "silence.ogg")
    # three hours of 8 kHz silence in FLAC: 2 MB, made in about a second
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", 3 * 3600, "-c:a", "flac", folder / "three-hours.flac")
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=320x240:r=10", "-t", 5, "-pix_fmt", "yuv420p", folder / "no-audio.mp4")
    ffmpeg("-ss", 20, "-t", 10, "-i", music, "-ac", 2, "-c:a", "pcm_s16le", folder / "big.wav")  # 1.8 MB, for the full disk
    return folder


@dataclass(frozen=True)
class Corpus:
    root: Path
    out: Path
    inputs: Path
    sources: dict[str, str]  # kind -> the bad source as given on the command line
    good: str
    result: subprocess.CompletedProcess
    inputs_before: dict[str, tuple[int, int]]
    api: str

    def sentence(self, kind: str) -> str:
        source = self.sources[kind]
        lines = [line for line in sentences(self.result) if line.startswith(f"covermill: {source}: ")]
        assert len(lines) == 1, self.result.stderr
        return lines[0]


@pytest.fixture(scope="module")
def corpus(prefect_server, inputs, tmp_path_factory) -> Corpus:
    """One `covermill run --dry-run` over every bad source and the good song (last), against the
    session's Prefect server; loopback addresses allowed for 127.0.0.1 only, as a user's config says."""
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("corpus")
    served = root / "served"
    served.mkdir()
    shutil.copyfile(inputs / "hostile.ogg", served / "song.ogg")
    with http_server(served) as dead:
        pass  # the port is closed again: nothing listens there now
    config = root / "config.yaml"
    config.write_text("download:\n  allow_private: [127.0.0.1]\n")
    before = snapshot(inputs)
    with http_server(served, Answers) as base:
        port = base.rsplit(":", 1)[1]
        sources = {
            "empty-file": str(inputs / "empty.mp3"),
            "truncated-audio": str(inputs / "truncated.mp3"),
            "corrupt-audio": str(inputs / "corrupt.mp3"),
            "text-file-named-mp3": str(inputs / "text.mp3"),
            "half-a-second-of-audio": str(inputs / "half-second.ogg"),
            "silence-only": str(inputs / "silence.ogg"),
            "three-hours-over-the-cap": str(inputs / "three-hours.flac"),
            "video-without-audio": str(inputs / "no-audio.mp4"),
            "dead-url": f"{dead}/song.ogg",
            "http-404": f"{base}/missing.ogg",
            "http-500": f"{base}/error.ogg",
            "file-url": f"file://{inputs / 'hostile.ogg'}",  # a file that exists: still not read through the URL
            "ftp-url": f"ftp://127.0.0.1:{port}/song.ogg",
            "private-network-address": "http://10.255.255.1/song.mp3",
            "cloud-metadata-address": "http://169.254.169.254/latest/meta-data/",
            "loopback-address-not-allowed": f"http://127.0.0.2:{port}/song.ogg",
        }
        assert set(sources) == set(BAD_SOURCES)
        good = str(inputs / "hostile.ogg")
        result = covermill(root, "run", *sources.values(), good, "--out", str(root / "out"), "--config", str(config),
                           "--dry-run", api=PREFECT_API_URL.value())
    return Corpus(root=root, out=root / "out", inputs=inputs, sources=sources, good=good, result=result,
                  inputs_before=before, api=PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def good_song(corpus) -> tuple[Song, SongFolder]:
    (song,) = [s for s in Ledger(ledger_path(corpus.out)).songs() if s.source == corpus.good]
    return song, SongFolder(corpus.out, song.id)


# --- the run as a whole


@pytest.mark.server
def test_one_sentence_per_bad_source_and_the_good_song_is_finished(corpus, good_song):
    result = corpus.result
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = sentences(result)
    assert len(lines) == len(BAD_SOURCES), result.stderr
    assert all(line.startswith("covermill: ") and line.endswith(".") for line in lines)
    n = len(BAD_SOURCES) + 1
    assert f"1 of {n} songs done, {n - 1} failed." in result.stdout
    song, folder = good_song
    assert probe(folder.video).duration > 9.0 and folder.winner_midi.stat().st_size > 0
    assert Ledger(ledger_path(corpus.out)).is_done(song.id, "video")


@pytest.mark.server
@pytest.mark.parametrize("kind", list(BAD_SOURCES))
def test_a_bad_source_is_one_sentence_naming_it_and_what_to_do(corpus, kind):
    sentence = corpus.sentence(kind)
    for needle in BAD_SOURCES[kind]:
        assert needle in sentence, sentence


@pytest.mark.server
def test_a_refused_source_leaves_no_song_folder(corpus, good_song):
    """Only songs that got through download have a folder (the good one, and the silent one whose
    generate found nothing): a refused file is not kept, and the three-hour file was refused before
    it was copied or decoded."""
    ledger = Ledger(ledger_path(corpus.out))
    recorded = {s.source: s.id for s in ledger.songs()}
    assert set(recorded) == {corpus.good, corpus.sources["silence-only"]}
    folders = {p.name for p in corpus.out.iterdir() if p.is_dir() and p.name != "gallery"}
    assert folders == set(recorded.values())
    assert not list(corpus.out.rglob("original.flac"))


@pytest.mark.server
def test_nothing_is_written_outside_the_work_folder(corpus):
    assert not list((corpus.root / "cwd").iterdir())  # where the command ran
    assert not list((corpus.root / "tmp").iterdir())  # its TMPDIR
    assert snapshot(corpus.inputs) == corpus.inputs_before  # the sources, read and never changed
    assert {p.name for p in (corpus.root / "served").iterdir()} == {"song.ogg"}


# --- titles from a file's tags: the good song's title and artist


@pytest.mark.server
def test_title_tags_are_kept_as_typed(good_song):
    song, _ = good_song
    assert (song.title, song.artist) == (TITLE, ARTIST)  # a record of the tags, nothing interpreted


@pytest.mark.server
def test_title_at_file_is_drawn_as_text_never_read(good_song, tmp_path):
    """`@/etc/passwd`: the thumbnail is exactly what the lettering draws from the literal title (that
    it draws `@file` literally is proven in tests/media/test_thumbnail.py), and the file's contents
    appear nowhere."""
    song, folder = good_song
    layout = layout_text(1280, 720, song.title, song.artist, ThumbnailSettings())
    assert layout.title[0].text.startswith("@/etc/passwd <script>")
    with Image(filename=str(folder.thumbnail)) as made, Image(filename=str(make_thumbnail(song, tmp_path / "t.jpg"))) as literal:
        assert np.array_equal(np.array(made), np.array(literal))
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for page in (folder.metadata, folder.review_page, folder.root / "upload_request.json"):
        assert passwd not in page.read_text()


@pytest.mark.server
def test_title_imagemagick_escape_is_drawn_as_text(good_song):
    """`%[pixel:p]`: the artist line is laid out (and measured) as the literal text."""
    song, _ = good_song
    artist = layout_text(1280, 720, song.title, song.artist, ThumbnailSettings()).artist
    assert artist is not None and artist.text == "%[pixel:p]"


@pytest.mark.server
def test_title_with_a_script_tag_stays_text_in_the_gallery_and_out_of_youtubes_title(corpus, good_song):
    song, folder = good_song
    for page in (folder.review_page, corpus.out / "gallery" / "index.html"):
        html = page.read_text()
        assert "<script" not in html and "&lt;script&gt;" in html
    title = json.loads(folder.metadata.read_text())["publication"]["title"]
    assert "<" not in title and ">" not in title and "\u2039script\u203a" in title


@pytest.mark.server
def test_title_with_control_characters_is_cleaned_for_youtube_and_never_reaches_the_terminal(corpus, good_song):
    _, folder = good_song
    publication = json.loads(folder.metadata.read_text())["publication"]
    snippet = json.loads((folder.root / "upload_request.json").read_text())["request"]["videos.insert"]["body"]["snippet"]
    for text in (publication["title"], snippet["title"], *snippet["tags"]):
        assert not [c for c in text if unicodedata.category(c) == "Cc"], repr(text)
    for text in (publication["description"], snippet["description"]):
        assert not [c for c in text if unicodedata.category(c) == "Cc" and c != "\n"], repr(text)
    assert publication["title"].startswith("@/etc/passwd \u2039script\u203a [31m 桜の季節")
    assert not [c for c in CONTROLS if c in corpus.result.stdout + corpus.result.stderr]


@pytest.mark.server
def test_title_of_500_characters_is_cut_to_youtubes_100(good_song):
    song, folder = good_song
    assert len(song.title) == 500
    title = json.loads(folder.metadata.read_text())["publication"]["title"]
    request = json.loads((folder.root / "upload_request.json").read_text())["request"]["videos.insert"]["body"]["snippet"]
    assert len(title) <= TITLE_MAX_CHARS and title.endswith("(Piano Cover)") and request["title"] == title
    assert len(",".join(request["tags"])) <= 500


@pytest.mark.server
def test_title_in_mixed_scripts_keeps_every_script(good_song):
    song, folder = good_song
    title = json.loads(folder.metadata.read_text())["publication"]["title"]
    assert all(word in title for word in ("桜の季節", "Привет", "مرحبا"))
    fonts = {line.font for line in layout_text(1280, 720, song.title, song.artist, ThumbnailSettings()).title}
    assert any("CJK" in font for font in fonts)  # a font with the Japanese glyphs, not boxes


@pytest.mark.server
def test_title_with_shell_and_path_tricks_makes_no_file(corpus, good_song):
    """`$(touch x)` and `../../x`: no shell ever sees a title and no path is made from one (the song's
    folder is its id): no `x` anywhere the command could reach from its folders."""
    song, folder = good_song
    assert folder.root.name == song.id and "$(touch x)" in song.title and "../../x" in song.title
    for place in (corpus.root, corpus.root.parent, corpus.inputs):
        assert not [p for p in place.rglob("x") if p.is_file()], place


# --- what stops a command before any song


CONFIG_KINDS = {
    "config-wrong-type": ("download:\n  max_duration_s: three hours\n",
                          ("setting 'download.max_duration_s' is invalid: Input should be a valid number", "; fix it in the file.")),
    "config-unknown-key": ("render:\n  soundfnt: /usr/share/sounds/sf2/FluidR3_GM.sf2\n",
                           ("unknown setting 'render.soundfnt'; check its spelling (known here:", "soundfont")),
    "config-not-yaml": ("render:\n  sample_rate: [\n", ("not valid YAML", "; fix the indentation or quoting there.")),
    "missing-soundfont": ("render:\n  soundfont: {root}/gone.sf2\n",
                          ("{root}/gone.sf2: soundfont not found; install fluid-soundfont-gm or set render.soundfont in config.yaml.",)),
    "missing-model-folder": ("generate:\n  generators: [basic-pitch, pop2piano]\n  options:\n    pop2piano:\n      model: {root}/pop2piano\n",
                             ("generator pop2piano: there is no Pop2Piano model in {root}/pop2piano:",
                              "run `hf download sweetcocoa/pop2piano --local-dir pop2piano` and copy that folder to {root}/pop2piano.")),
}


@pytest.mark.parametrize("kind", list(CONFIG_KINDS))
def test_a_bad_config_stops_the_run_before_any_song(kind, tmp_path):
    text, needles = CONFIG_KINDS[kind]
    config = tmp_path / "config.yaml"
    config.write_text(text.format(root=tmp_path))
    out = tmp_path / "out"
    result = covermill(tmp_path, "run", "song.ogg", "--config", str(config), "--out", str(out), "--dry-run")
    sentence = assert_one_sentence(result, 2, *(needle.format(root=tmp_path) for needle in needles))
    assert str(config) in sentence or str(tmp_path) in sentence
    assert not out.exists()  # stopped before the first song: no work folder, no ledger


def test_a_read_only_work_folder_is_one_sentence_before_any_song(tmp_path):
    """Run with root's permission override dropped (tests run as root in CI): the mode 555 folder is
    as read-only to the command as to any user."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = covermill(tmp_path, "run", "song.ogg", "--out", str(out), "--dry-run", obey_permissions=True)
    finally:
        out.chmod(0o755)
    assert_one_sentence(result, 2, f"covermill: {out}: the work folder cannot be written (Permission denied); "
                                   "make it writable for this user, or give another folder with --out.")
    assert not list(out.iterdir())


@pytest.mark.server
def test_a_full_disk_is_one_sentence_naming_the_write(corpus, tmp_path):
    """A file size limit of 512 KiB: the ledger (~100 KB) fits, copying the 1.8 MB song in fails as a
    full disk would."""
    out = tmp_path / "out"
    result = covermill(tmp_path, "run", str(corpus.inputs / "big.wav"), "--out", str(out), "--dry-run", api=corpus.api,
                       file_size=512 * 1024)
    (folder,) = [p for p in out.iterdir() if p.is_dir() and p.name != "gallery"]
    assert_one_sentence(result, 1, f"covermill: {corpus.inputs / 'big.wav'}: could not write to {folder} (File too large); "
                                   "free space on that disk (or raise the limit), then run again.")
    assert not list(folder.iterdir())  # no half-written file left behind


# --- a playlist


@pytest.mark.server
def test_a_playlist_with_duplicates_covers_the_song_once(corpus, good_song, tmp_path):
    """The same song three times over (as typed, by another relative spelling, by its absolute path):
    one entry, covered once, nothing failed. The nightly runs over the corpus's work folder, where the
    song is already made (a new song costs ~20 s), so its stages are skipped."""
    song, _ = good_song
    playlist = tmp_path / "tonight.txt"
    relative = os.path.relpath(corpus.good, tmp_path)
    playlist.write_text(f"{relative}\n{Path(relative).parent}/./{Path(relative).name}\n{corpus.good}\n")
    result = covermill(corpus.root, "nightly", str(playlist), "--out", str(corpus.out), "--dry-run", api=corpus.api)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.stderr == "" and "Traceback" not in result.stdout
    assert "1 done, 0 rejected, 0 failed, 0 already settled, 0 left for another night." in result.stdout
    assert Ledger(ledger_path(corpus.out)).entry(corpus.good)[0] == State.DONE
    assert not [c for c in CONTROLS if c in result.stdout]  # the title in the summary, its control characters escaped
