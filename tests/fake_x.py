"""The X API v2 filtered stream on 127.0.0.1, replaying recorded stream lines, with the faults a
connector must survive.

- ``GET/POST /2/tweets/search/stream/rules``: the app's rules, stateful, answered in X's shapes
  (``data`` + ``meta.sent/result_count``; ``meta.summary.created/deleted``; ``DuplicateRule``).
- ``GET /2/tweets/search/stream``: chunked, one recorded line per ``\\r\\n`` with a ``\\r\\n``
  keep-alive between lines, the second line split across two chunks, then keep-alives every
  :attr:`FakeX.keepalive_s`. The feed is shared by all connections, as X's is: a reconnect gets
  the lines not yet sent, never the ones already sent.

Both check ``Authorization: Bearer <token>`` (401 in X's problem shape otherwise). Fault knobs,
each used once: :attr:`FakeX.statuses` (answer the next stream requests with these codes; 429
carries ``x-rate-limit-reset`` one second ahead), :attr:`FakeX.drop_after` (abort the
connection after that many lines), :attr:`FakeX.silent_after` (stop sending anything, not even
keep-alives), :attr:`FakeX.disconnect_after` (send X's ``operational-disconnect`` error line and
close).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from firesift.api.server import serve_in_thread

OPERATIONAL_DISCONNECT = (
    b'{"errors":[{"title":"operational-disconnect","disconnect_type":"OperationalDisconnect",'
    b'"detail":"This stream has been disconnected for operational reasons.",'
    b'"type":"https://api.twitter.com/2/problems/operational-disconnect"}]}'
)
"""The line X sends before closing a stream for operational reasons (filtered stream docs,
"Handling disconnections")."""
DUPLICATE = "https://api.twitter.com/2/problems/duplicate-rules"


RULES = "/2/tweets/search/stream/rules"


class _Dropped(Exception):
    """Raised inside the response body: the server aborts the connection mid-stream."""


@dataclass
class FakeX:
    """The fake's state; the test changes the knobs, the server reads them per request."""

    lines: list[bytes]
    token: str = "t"
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    keepalive_s: float = 0.05
    statuses: list[int] = field(default_factory=list)
    drop_after: int | None = None
    silent_after: int | None = None
    disconnect_after: int | None = None
    sent: int = 0
    connects: int = 0
    stream_queries: list[dict[str, str]] = field(default_factory=list)
    rule_posts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1_500_000_000_000_000_000))

    def add_rule(self, value: str, tag: str = "") -> str:
        rule_id = str(next(self._ids))
        self.rules[rule_id] = {"id": rule_id, "value": value, **({"tag": tag} if tag else {})}
        return rule_id

    def _refused(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.token}":
            return None
        body = {"title": "Unauthorized", "type": "about:blank", "status": 401,
                "detail": "Unauthorized"}  # fmt: skip
        return JSONResponse(body, status_code=401)

    async def rules_endpoint(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        sent = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        if request.method == "GET":
            data = list(self.rules.values())
            meta = {"sent": sent, "result_count": len(data)}
            return JSONResponse({"data": data, "meta": meta} if data else {"meta": meta})
        body = await request.json()
        self.rule_posts.append(body)
        if "delete" in body:
            ids = body["delete"]["ids"]
            gone = [i for i in ids if self.rules.pop(i, None)]
            summary = {"deleted": len(gone), "not_deleted": len(ids) - len(gone)}
            return JSONResponse({"meta": {"sent": sent, "summary": summary}})
        created: list[dict[str, str]] = []
        errors: list[dict[str, str]] = []
        for rule in body["add"]:
            if any(r["value"] == rule["value"] for r in self.rules.values()):
                errors.append({"value": rule["value"], "title": "DuplicateRule", "type": DUPLICATE})
                continue
            created.append(self.rules[self.add_rule(rule["value"], rule.get("tag", ""))])
        summary = {"created": len(created), "not_created": len(errors),
                   "valid": len(created), "invalid": len(errors)}  # fmt: skip
        answer: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if created:
            answer["data"] = created
        if errors:
            answer["errors"] = errors
        return JSONResponse(answer, status_code=201 if created else 200)

    async def stream_endpoint(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        self.connects += 1
        self.stream_queries.append(dict(request.query_params))
        if self.statuses:
            code = self.statuses.pop(0)
            headers = {"x-rate-limit-reset": str(int(time.time()) + 1)} if code == 429 else {}
            return JSONResponse({"title": f"HTTP {code}", "status": code}, code, headers)
        return StreamingResponse(self._body(), media_type="application/json")

    async def _body(self) -> AsyncIterator[bytes]:
        yield b"\r\n"
        in_connection = 0
        while True:
            if self.drop_after is not None and in_connection >= self.drop_after:
                self.drop_after = None
                raise _Dropped("fake X drops the connection")
            if self.disconnect_after is not None and in_connection >= self.disconnect_after:
                self.disconnect_after = None
                yield OPERATIONAL_DISCONNECT + b"\r\n"
                return
            if self.silent_after is not None and in_connection >= self.silent_after:
                self.silent_after = None
                await asyncio.sleep(3600)
            if self.sent < len(self.lines):
                line = self.lines[self.sent] + b"\r\n"
                self.sent += 1
                in_connection += 1
                if self.sent == 2:  # one line arrives in two chunks
                    yield line[:50]
                    await asyncio.sleep(0.02)
                    yield line[50:]
                else:
                    yield line
            yield b"\r\n"
            await asyncio.sleep(self.keepalive_s)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/2/tweets/search/stream/rules", self.rules_endpoint, methods=["GET", "POST"]
                ),
                Route("/2/tweets/search/stream", self.stream_endpoint),
            ]
        )


@contextmanager
def running(fake: FakeX) -> Iterator[FakeX]:
    """Serve ``fake`` on a free port (its ``url``) in a thread; stopped on exit."""
    with serve_in_thread(fake.app()) as url:
        fake.url = url
        yield fake
