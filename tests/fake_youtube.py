"""A fake YouTube Data API on 127.0.0.1: the resumable upload protocol as the real one speaks it.

POST /upload/youtube/v3/videos?uploadType=resumable opens a session and answers its URI in
`Location`; each PUT of a chunk (Content-Range: bytes a-b/total) answers 308 with the Range held
so far, and the last one 200 with the video resource. The bytes held and every completed video
stay inspectable, so a test can prove the file arrived whole and exactly once.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Session:
    metadata: dict
    total: int | None = None
    data: bytearray = field(default_factory=bytearray)


class FakeYouTube:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.videos: dict[str, dict] = {}  # video id -> {"metadata", "data"}
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeYouTube:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                body = self._body()
                if self.path.startswith("/upload/youtube/v3/videos") and "uploadType=resumable" in self.path:
                    with fake._lock:
                        session_id = f"s{next(fake._ids)}"
                        fake.sessions[session_id] = Session(json.loads(body or b"{}"))
                    self._answer(200, None, {"Location": f"{fake.url}upload/session/{session_id}"})
                    return
                self._answer(404, {"error": {"code": 404, "message": f"no fake for {self.path}"}})

            def do_PUT(self) -> None:
                fake.requests.append(("PUT", self.path))
                match = re.fullmatch(r"/upload/session/(\w+)", self.path.split("?")[0])
                session = fake.sessions.get(match.group(1)) if match else None
                if session is None:
                    self._answer(404, {"error": {"code": 404, "message": "no such upload session"}})
                    return
                chunk = self._body()
                span = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", self.headers.get("Content-Range", ""))
                if span is None or int(span.group(1)) != len(session.data):
                    self._answer(400, {"error": {"code": 400, "message": "chunk does not continue the upload"}})
                    return
                session.data += chunk
                if span.group(3) != "*":
                    session.total = int(span.group(3))
                if session.total is not None and len(session.data) >= session.total:
                    with fake._lock:
                        video_id = f"vid{next(fake._ids):05d}"
                        fake.videos[video_id] = {"metadata": session.metadata, "data": bytes(session.data)}
                    self._answer(200, {"kind": "youtube#video", "id": video_id, **session.metadata})
                    return
                self._answer(308, None, {"Range": f"bytes=0-{len(session.data) - 1}"})

        return Handler
