"""Jinja templates a user may replace: prompts, titles, descriptions."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import jinja2

from covermill.tasks.core.errors import CovermillError


def template_environment(templates_dir: Path | None, setting: str) -> jinja2.Environment:
    """Templates from `templates_dir` (named by config's `setting`) first, then covermill's own.

    Strict: a misspelt name is an error naming the template file and line, not an empty string.
    """
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        if not Path(templates_dir).is_dir():
            raise CovermillError(f"{templates_dir}: the templates folder does not exist; fix {setting} in config.yaml.")
        loaders.append(jinja2.FileSystemLoader(str(Path(templates_dir).absolute())))
    loaders.append(jinja2.PackageLoader("covermill.templates", "."))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,  # plain text: "Tom & Jerry" must stay as typed
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__


def _template_line(error: BaseException, filename: str | None) -> int | None:
    """The template line a render-time error came from: Jinja maps its frames back to the file."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if filename and frame.filename == filename]
    return lines[-1] if lines else None


def render_template(env: jinja2.Environment, name: str, context: dict[str, Any], setting: str) -> str:
    """The rendered template; every way it can fail is one sentence naming the file and line."""
    try:
        template = env.get_template(name)
    except jinja2.TemplateSyntaxError as error:
        raise CovermillError(f"{error.filename or name}, line {error.lineno}: template syntax error ({_first_line(error)}); fix the template.") from None
    except jinja2.TemplateNotFound:
        raise CovermillError(f"{name}: no such template in the templates folder or covermill's own templates; fix {setting} in config.yaml.") from None
    try:
        return template.render(**context)
    except Exception as error:  # anything a user's template can do wrong while rendering
        line = _template_line(error, template.filename)
        where = f"{template.filename or name}, line {line}" if line else (template.filename or name)
        raise CovermillError(f"{where}: the template failed ({_first_line(error)}); fix the template.") from None
