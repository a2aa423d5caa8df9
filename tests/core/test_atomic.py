"""Atomic outputs: whole or absent under their name, and on the disk before the name is."""

from __future__ import annotations

import os

import pytest

from covermill.tasks.core.atomic import atomic_output, write_text


def test_the_file_is_synced_before_its_rename_and_the_folder_after(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), replace(a, b))[1])
    target = write_text(tmp_path / "out" / "ranking.json", "{}\n")
    assert target.read_text() == "{}\n"
    (sync_file, temp), (rename, named), (sync_dir, folder) = events
    assert (sync_file, rename, sync_dir) == ("fsync", "replace", "fsync")
    assert os.path.basename(temp).startswith(".ranking.tmp-") and named == str(target) and folder == str(target.parent)


def test_a_failed_block_leaves_neither_the_target_nor_a_temporary(tmp_path):
    target = tmp_path / "video.mp4"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
