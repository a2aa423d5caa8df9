"""Every error covermill raises on purpose, in one place.

CovermillError is the one type a user should ever see: a sentence, not a traceback. Its
subclasses name outcomes the flows treat apart (a song every candidate failed, a day YouTube
closed). The upload's two internal signals live here too, so that no module invents its own.
"""


class CovermillError(Exception):
    """A problem the user can fix; its message is one sentence naming the thing and what to do.

    Stages raise it for bad input (a missing file, a file that is not audio, an unreachable URL,
    a typo in config.yaml). The CLI prints the message alone; `--debug` shows the traceback.
    Prefect does not retry it: a bad input stays bad.
    """


class DiskFull(CovermillError):
    """A write the disk refused: no space left, a quota, a file size limit. Not the input's fault:
    the same song goes through once there is room."""

    def __init__(self, what: str, where: object, reason: str):
        super().__init__(f"{what}: could not write to {where} ({reason}); free space on that disk (or raise the limit), then run again.")


class EveryCandidateRejected(CovermillError):
    """No candidate passed the ranking: the song is settled (nothing to publish), not a failure to retry."""


class DailyLimitReached(CovermillError):
    """YouTube will take no more today. Not a failure of the song: it waits for tomorrow's quota.
    (A CovermillError so that Prefect does not retry it; the publish flow catches it first.)"""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class SongBeingPublished(CovermillError):
    """Another publisher (a nightly, `publish`, a worker) holds the song: not a failure of the song;
    that publisher finishes it, and this one leaves it alone."""

    def __init__(self, song_id: str, holder: str):
        super().__init__(f"song {song_id} is being published by another covermill process ({holder}); it was left to that one.")
        self.song_id, self.holder = song_id, holder


class SessionGone(Exception):
    """The upload server no longer knows a resumable session (expired after about a week, or never
    completed): the upload starts a new one. Internal, never shown to a user."""


class UploadGaveUp(Exception):
    """The upload failed `retries` times in a row without progress. Internal: the upload stage
    turns it into a sentence."""
