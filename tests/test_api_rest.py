"""``/api`` REST endpoints, ``/healthz``, ``/metrics`` and the page, called in-process."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
import pytest

from firesift.api.app import create_app
from firesift.database import Database
from firesift.service import Service

pytestmark = pytest.mark.anyio

pytest_plugins = ["api_server"]


async def test_search_returns_ranked_posts_as_of(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/search", params={"q": "ottawa shooting", "as_of": "2014-10-22T16:00Z", "limit": 5}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "ottawa shooting"
    assert body["as_of"].startswith("2014-10-22T16:00")
    assert 0 < len(body["results"]) <= 5
    for post in body["results"]:
        assert post["created_at"] <= "2014-10-22T16:00:00+00:00"
        assert "score" in post and post["url"].startswith("https://x.com/")
    recent = await client.get("/api/search", params={"q": "#ferguson", "sort": "recent"})
    assert recent.status_code == 200 and recent.json()["results"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"q": ""}, "q"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "limit": "many"}, "limit"),
        ({"q": "x", "sort": "best"}, "sort"),
        ({"q": "x", "as_of": "the day before"}, "as_of"),
    ],
)
async def test_search_bad_parameters_are_422_naming_them(
    client: httpx.AsyncClient, params: dict[str, str], param: str
) -> None:
    r = await client.get("/api/search", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["param"] == param


async def test_search_malformed_query_is_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/search", params={"q": "bogus:operator"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "q" and err["code"] == "invalid_query"
    assert "bogus" in err["message"]


async def test_trends_report_as_of(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/trends", params={"as_of": "2014-10-22T15:30Z", "window": "2h", "limit": 5}
    )
    assert r.status_code == 200
    report = r.json()
    assert report["window_ms"] == 2 * 3_600_000
    assert report["as_of"].startswith("2014-10-22T15:30")
    assert {"terms", "stories"} <= set(report)
    assert report["terms"], "the Ottawa shooting bursts at this time"
    assert len(report["terms"]) <= 5
    bad = await client.get("/api/trends", params={"window": "forever"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "window"


async def test_post_and_thread(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/posts/x/524925050739490816")
    assert r.status_code == 200
    body = r.json()
    assert body["post"]["id"] == "524925050739490816"
    assert body["post"]["author"]["handle"] == "CBCNews"
    thread = body["thread"]
    assert any(p["id"] == body["post"]["id"] for p in thread)
    assert len(thread) > 1
    assert [p["created_at"] for p in thread] == sorted(p["created_at"] for p in thread)
    missing = await client.get("/api/posts/x/1")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "post_not_found"


async def test_ingest_ndjson_reports_bad_lines_and_keeps_the_rest(
    client: httpx.AsyncClient, real_data: Path
) -> None:
    good = (
        b'{"id":"77001","text":"the quokka parade starts at noon #quokkafest",'
        b'"created_at":"2014-10-22T15:00:00Z","author":{"id":"9","handle":"quokkawatch"}}'
    )
    other = good.replace(b"77001", b"77002").replace(b"starts at noon", b"was moved to one")
    body = b"\n".join([good, b"{not json", b"", b'{"unknown": "shape"}', other]) + b"\n"
    r = await client.post("/api/ingest", content=body, params={"refresh": "true"})
    assert r.status_code == 200
    summary = r.json()
    assert summary["ingested"] == 2
    assert summary["skipped"] == 2
    wheres = {p["where"] for p in summary["problems"]}
    assert wheres == {"line:2", "line:4"}
    found = await client.get("/api/search", params={"q": "quokka", "as_of": "2014-10-23"})
    ids = {p["id"] for p in found.json()["results"]}
    assert ids == {"77001", "77002"}
    again = await client.post("/api/ingest", content=good + b"\n")
    assert again.json()["duplicates"] == 1
    # POST /api/ingest is the http source: its status counts what the pushes stored
    sources = (await client.get("/api/sources")).json()["sources"]
    http = next(s for s in sources if s["key"] == "http")
    assert http["state"] == "connected" and http["posts"] >= 2 and http["duplicates"] >= 1


async def test_ingest_bluesky_and_read_a_post_by_at_uri(tmp_path: Path, fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "bluesky_jetstream" / "expected_v1.jsonl").read_bytes()
    with Service(Database(tmp_path / "db"), owns_db=True) as svc:
        transport = httpx.ASGITransport(app=create_app(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post("/api/ingest", content=raw, params={"format": "jetstream"})
            assert r.status_code == 200 and r.json()["ingested"] > 0
            line = next(
                orjson.loads(x)
                for x in raw.splitlines()
                if b'"app.bsky.feed.post"' in x and b'"operation":"create"' in x
            )
            uri = f"at://{line['did']}/app.bsky.feed.post/{line['commit']['rkey']}"
            post = await client.get(f"/api/posts/bluesky/{uri}")
            assert post.status_code == 200
            assert post.json()["post"]["id"] == uri
            assert post.json()["post"]["source"] == "bluesky"


async def test_ingest_unknown_format_and_too_large(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/ingest", content=b"{}", params={"format": "carrier-pigeon"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "format"
    r = await client.post("/api/ingest", content=b"x", headers={"content-length": str(64 << 20)})
    assert r.status_code == 413


async def test_check_claim(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/check",
        json={"claim": "a soldier was shot at the Ottawa war memorial", "as_of": "2014-10-23"},
    )
    assert r.status_code == 200
    v = r.json()
    assert v["verdict"] in ("supported", "disputed", "unverified", "insufficient")
    assert v["verdict"] != "insufficient"
    assert v["evidence"] and v["as_of"].startswith("2014-10-23")
    bad = await client.post("/api/check", json={"as_of": "2014-10-23"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "claim"
    broken = await client.post("/api/check", content=b"[1, 2")
    assert broken.status_code == 400


async def test_healthz_stats_and_errors(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    stats = (await client.get("/api/stats")).json()
    assert stats["posts"] >= 4519 and stats["index_lag"] == 0
    r = await client.get("/api/nothing")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "message": "no route for GET /api/nothing",
        "type": "not_found_error",
        "param": None,
        "code": "unknown_route",
    }
    r = await client.delete("/api/search")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_web_page_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "firesift" in r.text
    missing = await client.get("/static/no-such-file.js")
    assert missing.status_code == 404 and "error" in missing.json()


_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|NaN)$"
)


async def test_metrics_is_prometheus_text(client: httpx.AsyncClient, service: Service) -> None:
    await client.get("/api/search", params={"q": "ferguson"})
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line.startswith("# HELP ") or not line:
            continue
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a Prometheus sample: {line!r}"
            samples[line.rsplit(" ", 1)[0]] = float(m.group(5))
    for name in (
        "firesift_store_posts",
        "firesift_index_lag_changes",
        "firesift_index_freshness_seconds",
        "firesift_ingest_posts_total",
        "firesift_ingest_rate_posts_per_second",
        "firesift_live_clients",
        "firesift_http_request_duration_seconds",
    ):
        assert name in types, name
    assert types["firesift_http_request_duration_seconds"] == "histogram"
    assert samples["firesift_store_posts"] == service.db.stats().store.posts
    key = (
        'firesift_http_request_duration_seconds_count{method="GET",route="/api/search",'
        'status="200"}'
    )
    assert samples[key] >= 1
    # every live source is there, POST /api/ingest's own included, with its state
    assert samples['firesift_source_state{source="http",state="connected",type="http"}'] in (0, 1)
    assert types["firesift_source_posts_total"] == "counter"
