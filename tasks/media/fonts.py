"""Which installed font file can draw a piece of text: bold DejaVu Sans for Latin, bold Noto Sans CJK for CJK.

Titles come in any script, and a font without a glyph draws boxes; fontconfig knows which files
cover which characters, so it is asked first, and Debian's known paths are the fallback on systems
without it. Kept apart from the lettering so that `covermill doctor` can check the fonts alone.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

LATIN_FAMILY = "DejaVu Sans"
CJK_FAMILY = "Noto Sans CJK JP"
# Where Debian's fonts-dejavu-core and fonts-noto-cjk put them, for systems without fc-match.
KNOWN_FONT_FILES = {
    LATIN_FAMILY: ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",),
    CJK_FAMILY: (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    ),
}

# Han, kana, Hangul and the CJK punctuation and full-width forms: text DejaVu has no glyphs for.
CJK_RANGES = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3130, 0x318F), (0x31C0, 0x31FF),
    (0x3200, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF),
)


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def _charset(text: str) -> str:
    """The text's code points as a fontconfig charset ('41-43 3042'), so fc-match prefers a font with those glyphs."""
    codes = sorted({ord(c) for c in text if c.isprintable() and not c.isspace()})
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return " ".join(f"{a:x}" if a == b else f"{a:x}-{b:x}" for a, b in ranges)


def _fc(*args: str) -> list[str] | None:
    """Lines printed by a fontconfig tool, or None when fontconfig is not installed."""
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else None


def known_font(family: str) -> str | None:
    return next((path for path in KNOWN_FONT_FILES[family] if Path(path).is_file()), None)


@lru_cache(maxsize=512)
def font_for(text: str) -> str | None:
    """A bold font file with glyphs for every character of `text` (DejaVu Sans Bold for Latin, Noto Sans
    CJK Bold for CJK), or None when no installed font has them all."""
    family = CJK_FAMILY if any(is_cjk(c) for c in text) else LATIN_FAMILY
    charset = _charset(text)
    # fontconfig ranks glyph coverage above the family name, so a title in a script the preferred
    # family lacks still gets a font that has it.
    matched = _fc("fc-match", "--format=%{file}\n", f"{family}:style=Bold" + (f":charset={charset}" if charset else ""))
    if matched is None:  # no fontconfig: trust the known files of the preferred family
        return known_font(family)
    best = matched[0] if matched and Path(matched[0]).is_file() else None
    if not charset:
        return best
    # fc-match always answers; only fonts fc-list finds for the charset really have every glyph.
    covering = [line.split("|", 1) for line in _fc("fc-list", "--format=%{file}|%{style}\n", f":charset={charset}") or []]
    files = [entry[0] for entry in covering if Path(entry[0]).is_file()]
    if best in files:
        return best
    bold = [entry[0] for entry in covering if len(entry) == 2 and "Bold" in entry[1] and entry[0] in files]
    return (bold or files or [None])[0]
