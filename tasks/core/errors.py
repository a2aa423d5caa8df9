"""The one exception type a user should ever see: a sentence, not a traceback."""


class CovermillError(Exception):
    """A problem the user can fix; its message is one sentence naming the thing and what to do.

    Stages raise it for bad input (a missing file, a file that is not audio, an unreachable URL,
    a typo in config.yaml). The CLI prints the message alone; `--debug` shows the traceback.
    Prefect does not retry it: a bad input stays bad.
    """
