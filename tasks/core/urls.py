"""Whether a source is a web address: the one test download, playlists, metadata and the gallery share.

Only http(s) counts; anything else a user gives is a local path (and is refused as one if it is not a file).
"""


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))
