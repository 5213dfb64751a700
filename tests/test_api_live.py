"""The live feed (``/api/live``): SSE over a real socket, filters, lag notes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from firesift.api import live
from firesift.api.live import LiveHub
from firesift.api.server import serve_in_thread
from firesift.errors import QueryError
from firesift.matcher import PostView, compile_matcher
from firesift.post import Author, Metrics, Post

pytest_plugins = ["api_server"]


def _events(lines: list[str]) -> list[tuple[str, Any]]:
    out = []
    event = "message"
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, orjson.loads(line[6:])))
            event = "message"
    return out


def test_live_feed_streams_new_matching_posts(app: Starlette) -> None:
    post = (
        b'{"id":"88001","text":"a wallaby is loose on Parliament Hill #wallabywatch",'
        b'"created_at":"2014-10-22T15:10:00Z","author":{"id":"7","handle":"hillreporter"}}\n'
    )
    other = post.replace(b"88001", b"88002").replace(b"wallaby", b"beaver")
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, timeout=10) as c,
        c.stream("GET", "/api/live", params={"q": "wallaby OR #wallabywatch"}) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines: list[str] = []
        it = stream.iter_lines()
        for line in it:
            lines.append(line)
            if line == ": connected":
                break
        with httpx.Client(base_url=url) as writer:
            r = writer.post("/api/ingest", content=other + post)
            assert r.json()["ingested"] == 2
        posts: list[Any] = []
        for line in it:
            lines.append(line)
            posts = [d for e, d in _events(lines) if e == "post"]
            if posts and any(e == "trends" for e, _ in _events(lines)):
                break
    assert [p["id"] for p in posts] == ["88001"]
    assert posts[0]["author"]["handle"] == "hillreporter"
    kinds = {e for e, _ in _events(lines)}
    assert {"stats", "trends", "post"} <= kinds
    stats = next(d for e, d in _events(lines) if e == "stats")
    assert stats["posts"] >= 4519


def test_live_feed_bad_query_is_400(app: Starlette) -> None:
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        r = c.get("/api/live", params={"q": "from:"})
        assert r.status_code in (400, 422)
        assert r.json()["error"]["param"] == "q"


def _post(text: str, **kw: Any) -> Post:
    return Post(
        source="x",
        id=str(abs(hash(text))),
        text=text,
        created_at=kw.pop("created_at", datetime(2014, 10, 22, 15, tzinfo=UTC)),
        author=Author("1", kw.pop("handle", "CBCNews")),
        **kw,
    )


@pytest.mark.parametrize(
    ("query", "post", "expected"),
    [
        ("gunman", _post("Gunman on the loose"), True),
        ("gunman", _post("gunmen on the loose"), False),
        ('"war memorial"', _post("shots at the War Memorial today"), True),
        ('"war memorial"', _post("memorial of the war"), False),
        ("from:cbcnews", _post("x"), True),
        ("from:bbc", _post("x"), False),
        ("#Ottawa", _post("news", hashtags=("ottawa",)), True),
        ("ottawa -shooting", _post("Ottawa shooting"), False),
        ("ottawa -shooting", _post("Ottawa today"), True),
        ("a OR b", _post("b"), True),
        ("filter:replies", _post("x", reply_to="1"), True),
        ("ottawa -filter:replies", _post("ottawa", reply_to="1"), False),
        ("min_faves:10", _post("x", metrics=Metrics(likes=12)), True),
        ("min_faves:10", _post("x", metrics=Metrics(likes=2)), False),
        ("ottawa since:2014-10-23", _post("ottawa"), False),
    ],
)
def test_matcher(query: str, post: Post, expected: bool) -> None:
    match = compile_matcher(query)
    assert match is not None
    assert match(PostView(post)) is expected


def test_matcher_empty_and_bad() -> None:
    assert compile_matcher("  ") is None
    with pytest.raises(QueryError):
        compile_matcher("nope:value")


def test_slow_client_gets_a_lag_note_and_never_blocks_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "CLIENT_QUEUE", 50)

    async def run() -> tuple[bytes, int]:
        hub = LiveHub(trends_every_s=3600, stats_every_s=3600)
        hub.start()
        try:
            client = hub.subscribe("")
            client.events = type(client.events)(maxlen=50)
            stream = hub.stream(client, first=[], heartbeat_s=5)
            await stream.__anext__()
            posts = [_post(f"post number {i}") for i in range(200)]
            posts = [
                Post(p.source, str(i), p.text, p.created_at, p.author) for i, p in enumerate(posts)
            ]
            hub.publish(posts)
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=5)
            await stream.aclose()
            return chunk, hub.clients
        finally:
            hub.stop()

    chunk, clients = asyncio.run(run())
    text = chunk.decode()
    assert text.startswith("event: lag\n")
    lag = orjson.loads(text.split("\n", 2)[1][6:])
    assert lag == {"dropped": 150, "total_dropped": 150}
    assert text.count("event: post\n") == 50
    assert '"id":"199"' in text and '"id":"149"' not in text
    assert clients == 0
