"""A fake YouTube Data API (and Google token endpoint) on 127.0.0.1, with fault injection.

It speaks what covermill's upload uses, as the real service does:
- POST /upload/youtube/v3/videos?uploadType=resumable opens a session, its URI in `Location`;
  each PUT of a chunk (Content-Range: bytes a-b/total) answers 308 with the Range held so far and
  the last one 200 with the video; an empty PUT with `bytes */total` asks how far a session got.
- POST /upload/youtube/v3/thumbnails/set, GET/POST youtube/v3/playlists, POST and DELETE playlistItems,
  GET channels (the uploads playlist) and GET playlistItems (the channel's uploads, newest first, or
  a playlist's items, filtered by videoId).
- POST /token: authorization-code and refresh-token grants; API calls need a token it issued
  (or one of `tokens`), so expiring them makes the client refresh.
Faults are queued with `inject`: an HTTP error (5xx, 401, 403 with a reason), a connection cut
mid-body, or a request that completes a video and then never answers (the client is killed
waiting). The bytes held, the completed videos and every request stay inspectable, so a test can
prove a file arrived whole and exactly once.
`before_answer(method, path, status)`, when set, is called once a request has been served and its
answer is about to leave; returning True withholds the answer (the connection is cut): the chaos
bench kills the client there, between the server's work and the client's ledger write.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Session:
    metadata: dict
    total: int | None = None
    data: bytearray = field(default_factory=bytearray)
    video_id: str | None = None


@dataclass
class Fault:
    method: str
    path: str  # a substring of the request path
    status: int | None = None  # answer this error instead of serving the request
    reason: str = ""  # errors[0].reason of a 403
    drop_after: int | None = None  # read this many body bytes (keeping them), then cut the connection
    hang_after_complete: bool = False  # serve the request, then never answer
    times: int = 1
    skip: int = 0  # let this many matching requests through first


class FakeYouTube:
    def __init__(self, tokens: tuple[str, ...] = ("test-token",), channel_id: str = "UCfakechannel") -> None:
        self.sessions: dict[str, Session] = {}
        self.videos: dict[str, dict] = {}  # video id -> {"metadata", "data", "session"}
        self.thumbnails: dict[str, bytes] = {}  # video id -> image bytes
        self.playlists: dict[str, dict] = {}  # playlist id -> resource
        self.playlist_items: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.token_requests: list[dict] = []
        self.access_tokens: set[str] = set(tokens)
        self.refresh_tokens: set[str] = set()
        self.channel_id = channel_id
        self.faults: list[Fault] = []
        # (method, path, status) -> True to withhold the answer of a request that was served
        self.before_answer: Callable[[str, str, int], bool] | None = None
        self.release = threading.Event()  # set to let hung requests finish (at shutdown)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.token_uri = f"{self.url}token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeYouTube:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- what tests drive -------------------------------------------------------------------
    def inject(self, method: str, path: str, **fault) -> Fault:
        made = Fault(method, path, **fault)
        with self._lock:
            self.faults.append(made)
        return made

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401, as an expired one does."""
        self.access_tokens.clear()

    def revoke(self) -> None:
        """The refresh tokens stop working too (the user revoked access, or a testing app's 7 days ran out)."""
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def completed(self) -> list[dict]:
        return list(self.videos.values())

    def uploads(self) -> list[tuple[str, str]]:
        """The requests that opened an upload session."""
        return [r for r in self.requests if r[0] == "POST" and "uploadType=resumable" in r[1]]

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):05d}"

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.path in path and fault.times > 0:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Google's front ends

            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self, limit: int | None = None) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length if limit is None else min(limit, length))

            _hang = False

            def _answer(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
                if self._hang:  # the work is done server-side; the answer never leaves
                    fake.release.wait()
                    self._cut()
                    return
                hook = fake.before_answer
                if hook is not None and hook(self.command, self.path, status):
                    self._cut()
                    return
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _error(self, status: int, message: str, reason: str = "") -> None:
                errors = [{"reason": reason or "backendError", "message": message, "domain": "youtube.video"}]
                self._answer(status, {"error": {"code": status, "message": message, "errors": errors}})

            def _cut(self) -> None:
                self.close_connection = True
                self.connection.close()

            def _query(self) -> dict[str, str]:
                return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

            def _route(self, method: str) -> None:
                fake.requests.append((method, self.path))
                path = urlsplit(self.path).path
                if path == "/token":
                    self._token()
                    return
                fault = fake._take_fault(method, self.path)
                if fault is not None and fault.drop_after is not None:
                    self._keep_partial(self._body(fault.drop_after))
                    self._cut()
                    return
                if fault is not None and fault.status is not None:
                    self._body()
                    if fault.status == 401:
                        self._answer(401, {"error": {"code": 401, "message": "Invalid Credentials",
                                                     "errors": [{"reason": "authError"}]}})
                    else:
                        self._error(fault.status, f"injected {fault.status} {fault.reason}".strip(), fault.reason)
                    return
                if self.headers.get("Authorization", "").removeprefix("Bearer ") not in fake.access_tokens:
                    self._body()
                    self._answer(401, {"error": {"code": 401, "message": "Invalid Credentials",
                                                 "errors": [{"reason": "authError"}]}})
                    return
                handler = {
                    ("POST", "/upload/youtube/v3/videos"): self._open_session,
                    ("POST", "/upload/youtube/v3/thumbnails/set"): self._thumbnail,
                    ("GET", "/youtube/v3/playlists"): self._list_playlists,
                    ("POST", "/youtube/v3/playlists"): self._insert_playlist,
                    ("POST", "/youtube/v3/playlistItems"): self._insert_playlist_item,
                    ("GET", "/youtube/v3/playlistItems"): self._list_playlist_items,
                    ("DELETE", "/youtube/v3/playlistItems"): self._delete_playlist_item,
                    ("GET", "/youtube/v3/channels"): self._channels,
                }.get((method, path))
                if handler is None and method == "PUT" and path.startswith("/upload/session/"):
                    handler = self._put_chunk
                if handler is None:
                    self._body()
                    self._error(404, f"no fake for {method} {path}", "notFound")
                    return
                self._hang = fault is not None and fault.hang_after_complete
                handler()

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def do_PUT(self) -> None:
                self._route("PUT")

            # --- OAuth ------------------------------------------------------------------------
            def _token(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
                fake.token_requests.append(form)
                grant = form.get("grant_type")
                if grant == "refresh_token" and form.get("refresh_token") not in fake.refresh_tokens:
                    self._answer(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
                    return
                if grant not in ("authorization_code", "refresh_token"):
                    self._answer(400, {"error": "unsupported_grant_type"})
                    return
                access = fake._new_id("access-")
                fake.access_tokens.add(access)
                answer = {"access_token": access, "expires_in": 3599, "token_type": "Bearer",
                          "scope": "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube"}
                if grant == "authorization_code":
                    refresh = fake._new_id("refresh-")
                    fake.refresh_tokens.add(refresh)
                    answer["refresh_token"] = refresh
                self._answer(200, answer)

            # --- resumable upload ----------------------------------------------------------------
            def _open_session(self) -> None:
                if self._query().get("uploadType") != "resumable":
                    self._body()
                    self._error(400, "only resumable uploads are faked")
                    return
                session_id = fake._new_id("s")
                fake.sessions[session_id] = Session(json.loads(self._body() or b"{}"))
                self._answer(200, None, {"Location": f"{fake.url}upload/session/{session_id}?upload_id={session_id}"})

            def _session(self) -> Session | None:
                match = re.fullmatch(r"/upload/session/(\w+)", urlsplit(self.path).path)
                return fake.sessions.get(match.group(1)) if match else None

            def _keep_partial(self, data: bytes) -> None:
                """What a cut connection delivered before it broke stays held, as on the real service."""
                session = self._session()
                span = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", self.headers.get("Content-Range", ""))
                if session is not None and span and session.video_id is None and int(span.group(1)) <= len(session.data):
                    del session.data[int(span.group(1)):]
                    session.data += data

            def _put_chunk(self) -> None:
                session = self._session()
                if session is None:
                    self._body()
                    self._error(404, "no such upload session", "notFound")
                    return
                chunk = self._body()
                content_range = self.headers.get("Content-Range", "")
                if content_range.startswith("bytes */"):  # how far did this session get?
                    self._progress(session)
                    return
                span = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range)
                if session.video_id is not None:
                    self._answer(200, fake.videos[session.video_id]["resource"])
                    return
                if span is None or int(span.group(1)) > len(session.data):
                    self._error(400, "chunk does not continue the upload")
                    return
                del session.data[int(span.group(1)):]  # a resent chunk overlaps what is held
                session.data += chunk
                if span.group(3) != "*":
                    session.total = int(span.group(3))
                if session.total is not None and len(session.data) >= session.total:
                    self._finish(session)
                    return
                self._progress(session)

            def _progress(self, session: Session) -> None:
                if session.video_id is not None:
                    self._answer(200, fake.videos[session.video_id]["resource"])
                elif session.data:
                    self._answer(308, None, {"Range": f"bytes=0-{len(session.data) - 1}"})
                else:
                    self._answer(308)

            def _finish(self, session: Session) -> None:
                video_id = fake._new_id("vid")
                resource = {"kind": "youtube#video", "id": video_id, **json.loads(json.dumps(session.metadata))}
                resource.setdefault("snippet", {})["channelId"] = fake.channel_id
                with fake._lock:
                    session.video_id = video_id
                    fake.videos[video_id] = {"metadata": session.metadata, "data": bytes(session.data), "resource": resource}
                self._answer(200, resource)

            # --- the rest of a publication ----------------------------------------------------
            def _thumbnail(self) -> None:
                video_id = self._query().get("videoId", "")
                image = self._body()
                if video_id not in fake.videos:
                    self._error(404, f"video {video_id} not found", "videoNotFound")
                    return
                fake.thumbnails[video_id] = image
                self._answer(200, {"kind": "youtube#thumbnailSetResponse", "items": [{"default": {"url": "x"}}]})

            def _list_playlists(self) -> None:
                items = list(fake.playlists.values())
                self._answer(200, {"kind": "youtube#playlistListResponse", "items": items,
                                   "pageInfo": {"totalResults": len(items)}})

            def _insert_playlist(self) -> None:
                body = json.loads(self._body() or b"{}")
                playlist_id = fake._new_id("PL")
                fake.playlists[playlist_id] = {"kind": "youtube#playlist", "id": playlist_id, **body}
                self._answer(200, fake.playlists[playlist_id])

            def _insert_playlist_item(self) -> None:
                body = json.loads(self._body() or b"{}")
                snippet = body.get("snippet", {})
                if snippet.get("playlistId") not in fake.playlists:
                    self._error(404, "playlist not found", "playlistNotFound")
                    return
                item = {"kind": "youtube#playlistItem", "id": fake._new_id("PLI"), **body}
                fake.playlist_items.append(item)
                self._answer(200, item)

            def _delete_playlist_item(self) -> None:
                self._body()
                item_id = self._query().get("id")
                with fake._lock:
                    kept = [i for i in fake.playlist_items if i["id"] != item_id]
                    found = len(kept) < len(fake.playlist_items)
                    fake.playlist_items[:] = kept
                if not found:
                    self._error(404, "playlist item not found", "playlistItemNotFound")
                    return
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _channels(self) -> None:
                self._body()
                self._answer(200, {"items": [{"id": fake.channel_id, "contentDetails": {
                    "relatedPlaylists": {"uploads": "UU" + fake.channel_id[2:]}}}]})

            def _list_playlist_items(self) -> None:
                """The uploads playlist: the completed videos, newest first, 50 to a page; or the items
                of one of the channel's playlists (those of one video, with `videoId`)."""
                self._body()
                query = self._query()
                if query.get("playlistId") in fake.playlists:
                    items = [i for i in fake.playlist_items if i["snippet"]["playlistId"] == query["playlistId"]
                             and query.get("videoId") in (None, i["snippet"]["resourceId"]["videoId"])]
                    self._answer(200, {"items": items, "pageInfo": {"totalResults": len(items)}})
                    return
                if query.get("playlistId") != "UU" + fake.channel_id[2:]:
                    self._error(404, "playlist not found", "playlistNotFound")
                    return
                videos = list(reversed(fake.videos.items()))
                start = int(query.get("pageToken") or 0)
                size = int(query.get("maxResults") or 5)
                page = videos[start:start + size]
                answer = {"items": [{"snippet": {"title": v["metadata"].get("snippet", {}).get("title", ""),
                                                 "description": v["metadata"].get("snippet", {}).get("description", ""),
                                                 "resourceId": {"kind": "youtube#video", "videoId": vid}}}
                                    for vid, v in page]}
                if start + size < len(videos):
                    answer["nextPageToken"] = str(start + size)
                self._answer(200, answer)

        return Handler
