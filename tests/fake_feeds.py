"""A feed server on 127.0.0.1 serving the real recorded feeds of ``data/fixtures/rss/`` the way
a web server does, with faults.

- Each path serves one version of a feed with a strong ``ETag`` (a hash of the body) and a
  ``Last-Modified`` (its newest entry's time). A request whose ``If-None-Match`` lists the
  current ETag gets ``304 Not Modified``; without ``If-None-Match``, so does one whose
  ``If-Modified-Since`` is not older than ``Last-Modified`` (RFC 9110 section 13.1: the ETag
  check wins when both are sent).
- :meth:`FakeFeeds.fail` queues one-shot error answers for a path (429 or 503 with
  ``Retry-After``, 500, 404); a path that was never served answers 404.
- Every request is logged with its headers, the status sent and when
  (:attr:`FakeFeeds.requests`).
- :func:`without_newest` builds the earlier version of a feed, the recording minus its newest
  entry (cut out of the text, the rest byte for byte), so the item that "appears" between two
  polls is a real one.

The recorded feeds and :func:`entries`, an oracle read with ElementTree (not feedparser, which
the source under test uses), live here too.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ATOM = "{http://www.w3.org/2005/Atom}"
ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1></body></html>\n"
)
"""What a misconfigured proxy answers with a 200: HTML, not a feed."""

_CONTENT_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml"}


def recorded(fixtures_dir: Path, name: str) -> bytes:
    """A recorded feed of ``data/fixtures/rss/``, verbatim."""
    return (fixtures_dir / "rss" / name).read_bytes()


@dataclass(frozen=True, slots=True)
class Entry:
    """What the recording says about one entry: id (guid), link, title, time."""

    id: str
    link: str
    title: str
    at: datetime


def entries(body: bytes) -> list[Entry]:
    """The entries of an RSS 2.0 or Atom document, read with ElementTree."""
    root = ET.fromstring(body)
    out: list[Entry] = []
    if root.tag == f"{ATOM}feed":
        for e in root.iter(f"{ATOM}entry"):
            link = next(
                (x.get("href", "") for x in e.iter(f"{ATOM}link") if x.get("rel") == "alternate"),
                "",
            )
            when = e.findtext(f"{ATOM}published") or e.findtext(f"{ATOM}updated") or ""
            out.append(
                Entry(
                    (e.findtext(f"{ATOM}id") or "").strip(),
                    link,
                    (e.findtext(f"{ATOM}title") or "").strip(),
                    datetime.fromisoformat(when.strip()).astimezone(UTC),
                )
            )
        return out
    for item in root.iter("item"):
        out.append(
            Entry(
                (item.findtext("guid") or "").strip(),
                (item.findtext("link") or "").strip(),
                (item.findtext("title") or "").strip(),
                parsedate_to_datetime((item.findtext("pubDate") or "").strip()).astimezone(UTC),
            )
        )
    return out


def without_newest(body: bytes) -> tuple[bytes, Entry]:
    """``body`` minus the block of its newest entry, and that entry."""
    newest = max(entries(body), key=lambda e: e.at)
    for m in re.finditer(rb"[ \t]*<(item|entry)[\s>].*?</\1>\s*", body, re.S):
        block = m.group(0)
        if f">{newest.id}<".encode() in block:
            return body[: m.start()] + body[m.end() :], newest
    raise AssertionError(f"no block holds the newest entry {newest.id}")


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    headers: dict[str, str]
    """Header names lowercased."""
    status: int
    at: float
    """``time.monotonic()`` when it arrived."""


@dataclass(slots=True)
class _Version:
    body: bytes
    content_type: str
    etag: str
    modified: datetime


@dataclass(slots=True)
class _Failure:
    status: int
    retry_after: str = ""


@dataclass
class FakeFeeds:
    """The server's state; :func:`running` starts it."""

    versions: dict[str, _Version] = field(default_factory=dict)
    failures: dict[str, list[_Failure]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, content_type: str = "") -> str:
        """Serve ``body`` at ``path`` from now on; returns its ETag."""
        try:
            newest = max(e.at for e in entries(body))
        except (ET.ParseError, ValueError):
            newest = datetime(2018, 1, 1, tzinfo=UTC)
        kind = content_type or _CONTENT_TYPES.get(Path(path).suffix, "application/xml")
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        with self._lock:
            self.versions[path] = _Version(body, kind, etag, newest)
        return etag

    def last_modified(self, path: str) -> str:
        return format_datetime(self.versions[path].modified, usegmt=True)

    def fail(self, path: str, status: int, *, retry_after: str = "", times: int = 1) -> None:
        """Answer the next ``times`` requests of ``path`` with ``status``."""
        with self._lock:
            self.failures.setdefault(path, []).extend([_Failure(status, retry_after)] * times)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a GET of ``path``; logs the request."""
        with self._lock:
            queued = self.failures.get(path)
            version = self.versions.get(path)
            if queued:
                failure = queued.pop(0)
                status, out, body = failure.status, {"Content-Type": "text/plain"}, b"error\n"
                if failure.retry_after:
                    out["Retry-After"] = failure.retry_after
            elif version is None:
                status, out, body = 404, {"Content-Type": "text/plain"}, b"not found\n"
            else:
                out = {
                    "ETag": version.etag,
                    "Last-Modified": format_datetime(version.modified, usegmt=True),
                }
                if _not_modified(version, headers):
                    status, body = 304, b""
                else:
                    status, body = 200, version.body
                    out["Content-Type"] = version.content_type
            self.requests.append(Request(path, headers, status, time.monotonic()))
        return status, out, body


def _not_modified(version: _Version, headers: dict[str, str]) -> bool:
    match = headers.get("if-none-match")
    if match is not None:
        tags = [t.strip() for t in match.split(",")]
        return "*" in tags or version.etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return version.modified <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


@contextmanager
def running(server: FakeFeeds | None = None) -> Iterator[FakeFeeds]:
    """Serve ``server`` (a fresh one by default) on a free port until the block ends."""
    feeds = server or FakeFeeds()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out, body = feeds.answer(self.path, headers)
            self.send_response(status)
            for k, v in out.items():
                self.send_header(k, v)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    feeds.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="fake-feeds", daemon=True)
    thread.start()
    try:
        yield feeds
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
