"""yt-dlp held to download.allow_private (tasks/cover/hosts.py): every fetch it makes is checked.

- One request handler, yt-dlp's urllib one, for http and https only (no file:, ftp:, data:).
- Every URL is checked before it is requested (the page, the feed, each format, each fragment),
  every redirect's target before it is followed, and every address a connection is about to be
  made to: what the name resolves to at that moment, so a name that answers first with a public
  address and then with 127.0.0.1 (DNS rebinding) is caught too.
- Media is fetched only by yt-dlp's own downloaders, whose requests all go through that handler.
  An external one (FFmpeg, rtmpdump, aria2c) would fetch by itself, so a format that needs one is
  refused, and yt-dlp is given no FFmpeg: its HLS downloader hands the streams it cannot read to
  FFmpeg, which would fetch their segments unchecked. (covermill decodes what was fetched with its
  own FFmpeg, tasks/core/audio.py, which reads local files only.)

A refusal is raised as `Refused` and also kept in `GuardedYoutubeDL.refusals`, so the caller can
say why even where yt-dlp wraps or swallows the exception.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin
from urllib.request import HTTPCookieProcessor, HTTPDefaultErrorHandler, HTTPErrorProcessor, OpenerDirector, UnknownHandler

from yt_dlp import YoutubeDL
from yt_dlp.downloader import get_suitable_downloader
from yt_dlp.downloader.external import ExternalFD
from yt_dlp.downloader.fragment import FragmentFD
from yt_dlp.downloader.http import HttpFD
from yt_dlp.networking._helper import _socket_connect, create_connection
from yt_dlp.networking._urllib import HTTPHandler, ProxyHandler, RedirectHandler, UrllibRH, _create_http_connection
from yt_dlp.networking.exceptions import RequestError

from covermill.tasks.cover.hosts import WEB_SCHEMES, Network, address_refusal, url_refusal

# yt-dlp goes without FFmpeg when its ffmpeg_location does not exist.
NO_FFMPEG = "/nonexistent/covermill-gives-yt-dlp-no-ffmpeg"
GUARDED_OPTIONS: dict[str, Any] = {
    "external_downloader": {"default": "native"},  # yt-dlp's own downloaders, never curl/aria2c/FFmpeg
    "hls_prefer_native": True,
    "ffmpeg_location": NO_FFMPEG,
    "enable_file_urls": False,
}


class Refused(RequestError):
    """A fetch covermill does not allow; `reason` ends the sentence "<source>: not downloaded, ..."."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class GuardedYoutubeDL(YoutubeDL):
    """A YoutubeDL whose every fetch is checked against the allowed private networks."""

    def __init__(self, params: dict[str, Any], allowed: Sequence[Network]):
        self.allowed = tuple(allowed)
        self.refusals: list[Refused] = []
        super().__init__({**params, **GUARDED_OPTIONS})

    def refuse(self, reason: str) -> Refused:
        refused = Refused(reason)
        self.refusals.append(refused)
        return refused

    def build_request_director(self, handlers, preferences=None):
        # yt-dlp's handlers (requests, curl_cffi, websockets, urllib with ftp: and data:) are replaced by one
        return super().build_request_director([functools.partial(GuardedUrllibRH, ydl=self)], preferences)

    def urlopen(self, req):
        """Every request yt-dlp makes passes here: its URL is checked before it is sent."""
        url = req if isinstance(req, str) else (getattr(req, "url", None) or req.full_url)
        refusal = url_refusal(url, self.allowed)
        if refusal:
            raise self.refuse(refusal.says("it leads to"))
        return super().urlopen(req)

    def refuse_outside_fetch(self, tool: str) -> Refused:
        return self.refuse(f"its stream needs {tool} to fetch it, outside covermill's address checks; "
                           "give the address of another recording")

    def dl(self, name, info, subtitle=False, test=False):
        """Each file yt-dlp downloads: only by a downloader of its own, whose requests are checked."""
        downloader = get_suitable_downloader(dict(info), self.params, to_stdout=(name == "-"))
        if downloader is None or issubclass(downloader, ExternalFD) or not issubclass(downloader, (HttpFD, FragmentFD)):
            raise self.refuse_outside_fetch(downloader.get_basename() if downloader is not None else "another program")
        return super().dl(name, info, subtitle=subtitle, test=test)

    def report_warning(self, message, *args, **kwargs):
        # The HLS downloader hands a stream it cannot read (SAMPLE-AES, or AES-128 without pycryptodomex)
        # to FFmpeg, saying so first: refused here, with a sentence. Were the words to change, FFmpeg
        # is still not found (NO_FFMPEG) and the download fails all the same.
        if "will be delegated to ffmpeg" in str(message):
            raise self.refuse_outside_fetch("ffmpeg")
        return super().report_warning(message, *args, **kwargs)


class GuardedUrllibRH(UrllibRH):
    """yt-dlp's urllib request handler, for http(s) only, checking each redirect and connection."""

    _SUPPORTED_URL_SCHEMES = WEB_SCHEMES

    def __init__(self, *, ydl: GuardedYoutubeDL, **kwargs: Any):
        kwargs.pop("enable_file_urls", None)
        super().__init__(**kwargs)
        self.ydl = ydl

    def _create_instance(self, proxies, cookiejar, legacy_ssl_support=None):
        # UrllibRH's handlers, less ftp:, data: and file:, with the HTTP and redirect ones guarded
        opener = OpenerDirector()
        for handler in (
            ProxyHandler(proxies),
            _GuardedHTTPHandler(self.ydl, debuglevel=int(bool(self.verbose)), source_address=self.source_address,
                                context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support)),
            HTTPCookieProcessor(cookiejar),
            UnknownHandler(),
            HTTPDefaultErrorHandler(),
            HTTPErrorProcessor(),
            _GuardedRedirectHandler(self.ydl),
        ):
            opener.add_handler(handler)
        opener.addheaders = []
        return opener


class _GuardedRedirectHandler(RedirectHandler):
    def __init__(self, ydl: GuardedYoutubeDL):
        super().__init__()
        self.ydl = ydl

    def _check(self, fp: Any, url: str) -> None:
        refusal = url_refusal(url, self.ydl.allowed)
        if refusal:
            fp.close()
            raise self.ydl.refuse(refusal.says("it redirects to"))

    def http_error_302(self, req, fp, code, msg, headers):
        # before urllib's own scheme check, so that a redirect to file: gets the same sentence
        location = headers.get("location") or headers.get("uri")
        if location:
            self._check(fp, urljoin(req.full_url, location))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self._check(fp, newurl)  # the address exactly as urllib is about to request it
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _GuardedHTTPHandler(HTTPHandler):
    """Connections only to allowed addresses, each checked just before it is connected to."""

    def __init__(self, ydl: GuardedYoutubeDL, **kwargs: Any):
        super().__init__(**kwargs)
        self.ydl = ydl

    def http_open(self, req):
        conn_class = self._make_conn_class(http.client.HTTPConnection, req)
        return self.do_open(functools.partial(self._connection, conn_class, req), req)

    def https_open(self, req):
        conn_class = self._make_conn_class(http.client.HTTPSConnection, req)
        return self.do_open(functools.partial(self._connection, conn_class, req), req, context=self._context)

    def _connection(self, conn_class: type, req: Any, *args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        connection = _create_http_connection(conn_class, self._source_address, *args, **kwargs)
        # Through a proxy the peer is the proxy the user chose (its own address may well be
        # private); the URL was checked all the same.
        if not (req.has_proxy() or getattr(req, "_tunnel_host", None)):
            connection._create_connection = self._checked_connect
        return connection

    def _checked_connect(self, address: tuple[str, int], *args: Any, **kwargs: Any):
        return create_connection(address, *args, **kwargs, _create_socket_func=functools.partial(self._checked_socket, address[0]))

    def _checked_socket(self, host: str, ip_addr: tuple, timeout: Any, source_address: Any):
        refusal = address_refusal(ipaddress.ip_address(ip_addr[4][0]), self.ydl.allowed, host)
        if refusal:
            raise self.ydl.refuse(refusal.says("it leads to"))
        return _socket_connect(ip_addr, timeout, source_address)
