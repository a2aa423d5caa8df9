"""Metadata stage: the video's title and description, rendered from Jinja templates a user may replace.

Templates are plain text (no HTML escaping) and strict: a misspelt name is an error naming the
template file and line, not a silently empty string. Whatever a template produces, the result is
made to fit YouTube's rules afterwards (title <= 100 characters, description <= 5000 bytes, no
angle brackets anywhere, no control characters from a file's tags), so a user's template cannot
break an upload.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from covermill.tasks.core.records import Candidate, Score, Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.templating import render_template, template_environment
from covermill.tasks.core.urls import is_url

TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
ELLIPSIS = "\u2026"
# YouTube rejects '<' and '>'; the single guillemets keep things like "A -> B" readable.
ANGLE_BRACKETS = str.maketrans({"<": "\u2039", ">": "\u203a"})


class MetadataSettings(Settings):
    title_template: str = "title.j2"
    description_template: str = "description.j2"
    templates_dir: Path | None = None  # a folder whose templates take precedence over covermill's own


def _source_url(song: Song) -> str:
    """The source when it is a web address; a local path is private and never goes into a description."""
    return song.source if is_url(song.source) else ""


def without_controls(text: str, keep: str = "") -> str:
    """`text` with its control characters (an escape sequence, a bell; but those in `keep`) as spaces."""
    return "".join(" " if unicodedata.category(c) == "Cc" and c not in keep else c for c in text)


def fit_title(text: str, limit: int = TITLE_MAX_CHARS) -> str:
    """One line without angle brackets or control characters, at most `limit` characters, cut at a word with an ellipsis."""
    text = " ".join(without_controls(text).split()).translate(ANGLE_BRACKETS)
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS)]
    space = head.rfind(" ")
    if space >= limit * 0.6:  # a word boundary, unless it throws away too much
        head = head[:space]
    return head.rstrip(" -\u2013\u2014,;:(/") + ELLIPSIS


def fit_description(text: str, limit: int = DESCRIPTION_MAX_BYTES) -> str:
    """Tidy lines without angle brackets or control characters, at most `limit` UTF-8 bytes, cut at a line or word with an ellipsis."""
    text = without_controls(text.replace("\r\n", "\n").replace("\r", "\n"), keep="\n\t")
    lines = [line.rstrip() for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip().translate(ANGLE_BRACKETS)
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    budget = limit - len(ELLIPSIS.encode("utf-8"))
    head = encoded[:budget].decode("utf-8", "ignore")  # never split a character
    for boundary in ("\n", " "):
        cut = head.rfind(boundary)
        if cut >= len(head) * 0.8:
            head = head[:cut]
            break
    return head.rstrip() + ELLIPSIS


def render_metadata(song: Song, candidate: Candidate, score: Score | None, settings: MetadataSettings | None = None,
                    sheet_music: dict[str, str] | None = None) -> tuple[str, str]:
    """(title, description) for the video of `candidate`, from the templates, fitted to YouTube's rules.

    `sheet_music` gives the web addresses of the score's files ("pdf", "musicxml") where the gallery is
    served; the templates see "" for each one without (a local path is never published)."""
    settings = settings or MetadataSettings()
    env = template_environment(settings.templates_dir, "metadata.templates_dir")
    links = {"pdf": "", "musicxml": ""} | {k: v for k, v in (sheet_music or {}).items() if is_url(v)}
    context = {"song": song, "candidate": candidate, "score": score, "source_url": _source_url(song), "sheet_music": links}
    title = render_template(env, settings.title_template, context, "metadata.title_template")
    description = render_template(env, settings.description_template, context, "metadata.description_template")
    return fit_title(title), fit_description(description)
