"""Files: atomic writes (a stage's output exists whole or not at all, so a re-run can trust it)
and content digests (the same bytes are the same work)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from covermill.tasks.core.leftovers import leftover_tag


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` when the block succeeds.

    The temporary name keeps the target's suffix because tools such as FFmpeg and ImageMagick
    pick the output format from it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # named after this host and process, so the next run can remove it should this one be killed
    tmp = target.with_name(f".{target.stem}.tmp-{leftover_tag()}-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        yield tmp
        # on disk before it takes the target's name, and the name on disk after: a stage is skipped
        # when its output exists, so a power cut must not leave an empty file under that name
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(target: Path, text: str) -> Path:
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Path, data: Any) -> Path:
    return write_text(target, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_atomic(source: Path, target: Path) -> Path:
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


def link_atomic(source: Path, target: Path) -> Path:
    """`target` as a hard link to `source` (the same bytes, no space), or a copy where the filesystem
    refuses hard links, atomically."""
    with atomic_output(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or one without hard links
            shutil.copy2(source, tmp)
    return Path(target)
