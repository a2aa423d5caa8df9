"""A failed run's sentence: a CovermillError as it is; anything else named, with URL queries dropped
(an upload session's upload_id resumes, so publishes, the upload: it must not reach the ledger,
the gallery or the logs)."""

from __future__ import annotations

import errno
import sqlite3

from googleapiclient.errors import ResumableUploadError
from httplib2 import Response

from covermill.flows.outcome import failure_sentence
from covermill.tasks.core.errors import CovermillError


def test_a_covermill_error_is_its_own_sentence():
    assert failure_sentence(CovermillError("x.ogg: no such file; check the path."), "x.ogg") == "x.ogg: no such file; check the path."


def test_an_unexpected_error_keeps_its_addresses_but_not_their_queries():
    session = "https://www.googleapis.com/upload/youtube/v3/videos?uploadType=resumable&upload_id=SESSION-SECRET-123"
    error = ResumableUploadError(Response({"status": "400"}), b'{"error": "bad"}', uri=session)
    sentence = failure_sentence(error, "song 5eed")
    assert "SESSION-SECRET-123" not in sentence and "upload_id" not in sentence
    assert sentence.startswith("song 5eed: unexpected failure (") and "HttpError 400" in sentence
    signed = failure_sentence(RuntimeError("GET https://cdn.example.com/a.m4a?sig=TOKEN&expire=1 failed"), "a")
    assert "https://cdn.example.com/a.m4a?..." in signed and "TOKEN" not in signed



def test_a_write_the_disk_refused_is_told_as_such_whichever_stage_made_it():
    # as shutil's copy raises it (the source first, the temporary target second): told by the target's folder
    copy = OSError(errno.EFBIG, "File too large", "/music/a.wav", None, "/out/5eed/.original.tmp-host-1-ab12cd34.wav")
    assert failure_sentence(copy, "/music/a.wav") == ("/music/a.wav: could not write to /out/5eed (File too large); "
                                                      "free space on that disk (or raise the limit), then run again.")
    assert failure_sentence(OSError(errno.ENOSPC, "No space left on device"), "a.ogg") == (
        "a.ogg: could not write to the work folder (No space left on device); free space on that disk (or raise the limit), then run again.")
    assert failure_sentence(sqlite3.OperationalError("database or disk is full"), "a.ogg").startswith(
        "a.ogg: could not write to the ledger (database or disk is full); free space")
    assert "unexpected failure" in failure_sentence(OSError(errno.EIO, "Input/output error"), "a.ogg")
