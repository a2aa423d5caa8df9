"""MusicXML to an engraved PDF and a PNG of its first page, through LilyPond (Debian's `lilypond`).

LilyPond's own importer (`musicxml2ly`) makes the .ly file; its header is replaced by ours, every
text a LilyPond string with `\\` and `"` escaped, so a title is printed as typed and can never be
read as LilyPond code. Then `lilypond` writes the PDF and Ghostscript (which LilyPond itself
depends on) renders page 1 for the review page. LilyPond beams by its own rules (`--no-beaming`).

Why LilyPond (measured on a real 4-minute cover, 5,773 notes, 2 cores): LilyPond 2.24 engraved it
in 9.4 s (musicxml2ly 3.8 s + lilypond 5.6 s), with automatic beaming, the title, composer and
arranger in the header, and PDF and PNG from the one package (143 MB installed with Ghostscript
and fonts). verovio 6.4.1 (PyPI) made the SVG pages in 0.5 s, but needs cairosvg to reach a PDF
(5.5 s for 11 pages, one PDF per page to be joined; 55 MB in all), left every sixteenth unbeamed,
dropped composer and arranger and drew the metronome mark's note as a missing glyph. MuseScore
needs a display server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import unicodedata
from pathlib import Path

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.leftovers import scratch_folder

TOOLS = ("musicxml2ly", "lilypond", "gs")
INSTALL = "install Debian's lilypond (`make system`), or set score.pdf: false in config.yaml"
HEADER = re.compile(r"\\header\s*\{.*?\n\s*\}\n", re.DOTALL)  # musicxml2ly: one entry a line, `}` on its own line


def missing_tools() -> list[str]:
    """The engraving tools not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def lilypond_string(text: str) -> str:
    """`text` as a LilyPond string literal: quoted, `\\` and `"` escaped, control characters as spaces."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header(title: str, composer: str, arranger: str) -> str:
    """A LilyPond \\header block with these texts (no tagline)."""
    lines = [f"    title = {lilypond_string(title)}"]
    if composer:
        lines.append(f"    composer = {lilypond_string(composer)}")
    if arranger:
        lines.append(f"    arranger = {lilypond_string(arranger)}")
    lines.append("    tagline = ##f")
    return "\\header {\n" + "\n".join(lines) + "\n}\n"


def with_header(ly: str, title: str, composer: str, arranger: str) -> str:
    """musicxml2ly's .ly text with its header (which copies the title unescaped) replaced by ours."""
    ours = header(title, composer, arranger)
    replaced, count = HEADER.subn(lambda _: ours, ly, count=1)
    if count:
        return replaced
    version = re.search(r'\\version\s+"[^"]*"\n', ly)
    at = version.end() if version else 0
    return ly[:at] + ours + ly[at:]


def _run(args: list[str], deadline: float, subject: str) -> subprocess.CompletedProcess:
    """One engraving tool, with what is left of the stage's time; one sentence when it fails."""
    left = deadline - time.monotonic()
    try:
        if left <= 0:
            raise subprocess.TimeoutExpired(args, 0)
        done = subprocess.run(args, capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        raise CovermillError(f"{subject}: {args[0]} did not finish within score.timeout_s; raise it, or set score.pdf: false.") from None
    except FileNotFoundError:
        raise CovermillError(f"{subject}: {args[0]} is not installed; {INSTALL}.") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "no message")
        raise CovermillError(f"{subject}: {args[0]} failed ({reason[:200]}); the MusicXML is kept, open it in MuseScore.")
    return done


def engrave(musicxml: Path, pdf: Path, page: Path, title: str, composer: str = "", arranger: str = "",
            paper: str = "a4", page_dpi: int = 110, timeout_s: float = 300.0) -> int:
    """`pdf` and `page` (PNG of page 1) from `musicxml`, atomically; the number of pages."""
    deadline = time.monotonic() + timeout_s
    subject = f"the score of {title!r}"
    with scratch_folder("score") as scratch:
        scratch = Path(scratch)
        ly = scratch / "score.ly"
        _run(["musicxml2ly", "--no-beaming", "--output", str(ly), str(Path(musicxml).absolute())], deadline, subject)
        ly.write_text(with_header(ly.read_text(encoding="utf-8"), title, composer, arranger), encoding="utf-8")
        _run(["lilypond", "-dno-point-and-click", f"-dpaper-size=\"{paper}\"", "--pdf", "--output", str(scratch / "score"), str(ly)],
             deadline, subject)
        made = scratch / "score.pdf"
        counted = _run(["gs", "-q", "-dNODISPLAY", f"--permit-file-read={made}", "-c",
                        f"({made}) (r) file runpdfbegin pdfpagecount = quit"], deadline, subject)
        pages = int(counted.stdout.split()[-1]) if counted.stdout.split() else 0
        if pages < 1:
            raise CovermillError(f"{subject}: LilyPond wrote a PDF without pages; the MusicXML is kept, open it in MuseScore.")
        with atomic_output(Path(page)) as tmp:
            _run(["gs", "-q", "-dBATCH", "-dNOPAUSE", "-dFirstPage=1", "-dLastPage=1", "-sDEVICE=png16m", f"-r{page_dpi}",
                  "-dTextAlphaBits=4", "-dGraphicsAlphaBits=4", f"-sOutputFile={tmp}", str(made)], deadline, subject)
        with atomic_output(Path(pdf)) as tmp:
            shutil.copyfile(made, tmp)
    return pages


def pdf_text(pdf: Path, first_page: int = 1, last_page: int = 1) -> str:
    """The text Ghostscript reads on pages `first_page`..`last_page` of a PDF (for checks)."""
    done = subprocess.run(["gs", "-q", "-dBATCH", "-dNOPAUSE", "-sDEVICE=txtwrite", f"-dFirstPage={first_page}",
                           f"-dLastPage={last_page}", "-sOutputFile=-", str(pdf)], capture_output=True, text=True, timeout=60)
    return done.stdout
