"""The MCP server, driven by the official ``mcp`` SDK's own client over both transports:
``firesift mcp`` spawned over stdio (``stdio_client``) and ``/mcp`` on a real ``firesift serve``
process (``streamable_http_client``), with API keys required. Every tool's structured output is
compared with what the library computes over a copy of the same real data (RumourEval 2017 and
the Bluesky Jetstream fixture), so the MCP layer can neither drop nor invent fields.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextResourceContents

from firesift.answer.engine import AnswerEngine
from firesift.answer.model import Filters, Message
from firesift.answer.stance import StanceModel
from firesift.answer.thread import thread
from firesift.api.auth import KeyStore
from firesift.database import Database
from firesift.mcp_server import post_uri, story_uri
from firesift.post import to_ms
from firesift.search import post_dict, search
from firesift.timeparse import parse_time
from source_harness import run_async

if TYPE_CHECKING:
    from api_server import ServerProcess

pytest_plugins = ["api_server"]

TOOLS = {"search_posts", "get_trends", "get_thread", "check_claim", "ask"}
THREAD = "x:524947674164760577"
"""An Ottawa shooting thread: 20 replies, 7 levels deep (see test_thread.py)."""
QUERY = {"query": "ottawa shooting", "as_of": "2014-10-22T16:00Z", "limit": 5}
TRENDS = {"as_of": "2014-10-22T15:30Z", "window": "2h", "limit": 5}
CLAIM = {"claim": "a soldier was shot at the Ottawa war memorial", "as_of": "2014-10-23"}
QUESTION = {"question": "Has the Ottawa gunman been identified?", "as_of": "2014-10-22T22:00Z"}


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _at(text: str) -> datetime:
    return parse_time(text, now=datetime.now(UTC))


@pytest.fixture(scope="module")
def data_dir(ingested_db: Path, real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RumourEval 2017 plus the real Jetstream posts (ids with ``/`` and ``:``); copy it."""
    from api_server import ingest_file

    db = copy_db(ingested_db, tmp_path_factory.mktemp("mcp") / "db")
    ingest_file(db, real_data / "fixtures" / "bluesky_jetstream" / "expected_v1.jsonl")
    return db


@pytest.fixture(scope="module")
def ref(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The library over its own copy of the data: what every tool must return."""
    with Database(copy_db(data_dir, tmp_path_factory.mktemp("mcp-ref") / "db")) as db:
        yield db


@pytest.fixture(scope="module")
def expected(ref: Database) -> dict[str, Any]:
    engine = AnswerEngine(ref)
    trends = ref.trends.report(as_of_ms=to_ms(_at(TRENDS["as_of"])), window_ms=7_200_000, limit=5)
    bluesky = next(p for p in ref.store.iter_posts() if p.source == "bluesky")
    return {
        "search": search(ref, QUERY["query"], as_of=_at(QUERY["as_of"]), limit=5).to_dict(),
        "trends": trends.to_json(),
        "thread": thread(ref, THREAD, stance=StanceModel.load()).to_dict(),
        "check": engine.check(CLAIM["claim"], as_of=_at(CLAIM["as_of"])).to_dict(),
        "ask": engine.answer(
            [Message("user", QUESTION["question"])], as_of=_at(QUESTION["as_of"])
        ).to_dict(),
        "ask_ctv": engine.answer(
            [Message("user", QUESTION["question"])],
            as_of=_at(QUESTION["as_of"]),
            filters=Filters(query="from:CTVNews"),
        ).to_dict(),
        "bluesky": post_dict(bluesky),
        "root": post_dict(ref.store.get("x", THREAD.partition(":")[2])),  # type: ignore[arg-type]
    }


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRESIFT_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), PYTHONUNBUFFERED="1")
    return env


def _structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    # the text block carries the same JSON, for clients that ignore structured content
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def _error(result: CallToolResult) -> str:
    assert result.is_error and result.structured_content is None
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


def _json(contents: list[Any]) -> Any:
    (item,) = contents
    assert isinstance(item, TextResourceContents) and item.mime_type == "application/json"
    return json.loads(item.text)


async def _every_tool(client: Client, expected: dict[str, Any]) -> dict[str, Any]:
    """List and call every tool; each output equals the library's; returns the trends."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for t in tools.values():
        assert t.title and t.description and "\n" not in t.description
        assert t.input_schema["type"] == "object"
        assert t.output_schema is not None and t.output_schema["type"] == "object"
    assert tools["search_posts"].input_schema["required"] == ["query"]
    limit = tools["search_posts"].input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"]) == (1, 100)

    found = _structured(await client.call_tool("search_posts", QUERY))
    assert found == expected["search"] and len(found["results"]) == 5

    trends = _structured(await client.call_tool("get_trends", TRENDS))
    assert trends["terms"] == expected["trends"]["terms"] and trends["terms"]
    assert [s["id"] for s in trends["stories"]] == [s["id"] for s in expected["trends"]["stories"]]
    for s, want in zip(trends["stories"], expected["trends"]["stories"], strict=True):
        assert s == {**want, "uri": story_uri(want["id"], trends["as_of"])}

    conv = _structured(await client.call_tool("get_thread", {"key": THREAD}))
    assert conv == expected["thread"]
    assert conv["replies"] == 20 and conv["stance_by"] == "model"
    assert sum(v["posts"] for v in conv["tally"].values()) == 20

    verdict = _structured(await client.call_tool("check_claim", CLAIM))
    assert verdict == expected["check"]
    assert verdict["verdict"] in ("supported", "disputed", "unverified") and verdict["evidence"]

    answer = _structured(await client.call_tool("ask", QUESTION))
    assert answer == expected["ask"]
    assert answer["grounded"] and answer["citations"] and answer["claims"]
    return trends


def test_stdio_tools_resources_and_errors(
    data_dir: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    db = copy_db(data_dir, tmp_path / "db")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "firesift.cli", "mcp", "--db", str(db)],
        env=_env(tmp_path),
    )

    async def session() -> None:
        async with Client(stdio_client(params)) as client:
            assert client.server_info is not None and client.server_info.name == "firesift"
            trends = await _every_tool(client, expected)

            templates = {
                t.name: t.uri_template
                for t in (await client.list_resource_templates()).resource_templates
            }
            assert templates == {
                "post": "firesift://post/{source}/{+id}",
                "story": "firesift://story/{id}{?as_of}",
            }
            root = _json((await client.read_resource(post_uri("x", THREAD[2:]))).contents)
            assert root == expected["root"]
            bsky = expected["bluesky"]
            assert "/" in bsky["id"] and ":" in bsky["id"]
            got = _json((await client.read_resource(post_uri("bluesky", bsky["id"]))).contents)
            assert got == bsky
            assert trends["stories"], "the Ottawa shooting is a story at 15:30"
            story = trends["stories"][0]
            body = _json((await client.read_resource(story["uri"])).contents)
            assert body["id"] == story["id"] and body["title"] == story["title"]
            assert [f"{p['source']}:{p['id']}" for p in body["posts"]] == story["top_posts"]

            # mistakes are tool errors with firesift's message; the session goes on
            bad = _error(await client.call_tool("search_posts", {"query": "(ottawa"}))
            assert "search_posts" in bad and "unbalanced parenthesis" in bad
            bad = _error(await client.call_tool("get_thread", {"key": "x:1"}))
            assert "no post x:1" in bad
            bad = _error(await client.call_tool("get_trends", {"window": "forever"}))
            assert "window:" in bad
            bad = _error(await client.call_tool("check_claim", {"claim": "x", "as_of": "soon"}))
            assert "as_of:" in bad
            ctv = _structured(await client.call_tool("ask", {**QUESTION, "query": "from:CTVNews"}))
            assert ctv == expected["ask_ctv"] and ctv["citations"]
            assert {c["author"] for c in ctv["citations"]} == {"CTVNews"}
            bad = _error(await client.call_tool("ask", {**QUESTION, "query": "(from:CTVNews"}))
            assert "unbalanced parenthesis" in bad
            bad = _error(await client.call_tool("ask", {**QUESTION, "composer": "oracle"}))
            assert "unknown composer 'oracle'" in bad and "extractive" in bad
            bad = _error(await client.call_tool("search_posts", {"query": "x", "limit": 500}))
            assert "limit" in bad
            with pytest.raises(MCPError, match="no post x:1"):
                await client.read_resource(post_uri("x", "1"))
            with pytest.raises(MCPError, match="no story 000000000000"):
                await client.read_resource(story_uri("000000000000", trends["as_of"]))
            again = _structured(await client.call_tool("search_posts", QUERY))
            assert again == expected["search"]

    run_async(session)


@pytest.fixture(scope="module")
def keyed_server(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """``firesift serve --require-key`` over a copy of the data, and a key it accepts."""
    from api_server import ServerProcess

    home = tmp_path_factory.mktemp("mcp-serve")
    db = copy_db(data_dir, home / "db")
    keys = KeyStore(db)
    _, secret = keys.create("mcp-test")
    proc = ServerProcess(db, home, args=("--require-key",))
    try:
        yield proc, secret
    finally:
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out


def test_http_needs_the_api_key(keyed_server: tuple[ServerProcess, str]) -> None:
    proc, secret = keyed_server
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=proc.url, timeout=30) as http:
        missing = http.post("/mcp", json=init, headers=accept)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "missing_api_key"
        wrong = http.post("/mcp", json=init, headers={**accept, "Authorization": "Bearer fs-no"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        ok = http.post("/mcp", json=init, headers={**accept, "Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["result"]["serverInfo"]["name"] == "firesift"
        # on a loopback server, a browser page elsewhere cannot reach it (DNS rebinding)
        keyed = {**accept, "Authorization": f"Bearer {secret}"}
        foreign = http.post("/mcp", json=init, headers={**keyed, "Origin": "http://evil.test"})
        assert foreign.status_code == 403
        rebound = http.post("/mcp", json=init, headers={**keyed, "Host": "evil.test"})
        assert rebound.status_code == 421

    async def without_key() -> None:
        async with Client(f"{proc.url}/mcp") as client:
            await client.list_tools()

    # the SDK's client gives up on the 401 (its error names no status; the raw calls above do)
    with pytest.raises(ExceptionGroup) as refused:
        run_async(without_key)
    assert refused.group_contains(MCPError, depth=None)


def test_http_tools_with_key(
    keyed_server: tuple[ServerProcess, str], expected: dict[str, Any]
) -> None:
    proc, secret = keyed_server

    async def session() -> None:
        headers = {"Authorization": f"Bearer {secret}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            Client(streamable_http_client(f"{proc.url}/mcp", http_client=http)) as client,
        ):
            await _every_tool(client, expected)
            bad = _error(await client.call_tool("get_thread", {"key": "nonsense"}))
            assert "not a post key" in bad
            root = _json((await client.read_resource(post_uri("x", THREAD[2:]))).contents)
            assert root == expected["root"]

    run_async(session)
    assert "Traceback" not in proc.output()


def test_building_the_server_leaves_logging_alone(ref: Database) -> None:
    """The SDK's constructor calls logging.basicConfig; an app embedding firesift keeps its own
    logging configuration."""
    import logging

    from firesift.mcp_server import build_server
    from firesift.service import Service

    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers[:] = []  # as in a fresh process (pytest adds its own handlers)
    try:
        server = build_server(Service(ref))
        assert server.name == "firesift"
        assert root.handlers == [] and root.level == logging.WARNING
    finally:
        root.handlers[:] = saved


def test_the_same_app_serves_mcp_twice(ref: Database, expected: dict[str, Any]) -> None:
    """An SDK session manager runs once; each time the app is served gets a new one."""
    from firesift.api.app import create_app
    from firesift.api.server import serve_in_thread
    from firesift.service import Service

    app = create_app(Service(ref))
    for _ in range(2):
        with serve_in_thread(app) as url:

            async def call(url: str = url) -> dict[str, Any]:
                async with Client(f"{url}/mcp") as client:
                    return _structured(await client.call_tool("get_thread", {"key": THREAD}))

            assert run_async(call) == expected["thread"]


def test_the_sdk_loads_only_when_mcp_is_asked(ref: Database) -> None:
    """The SDK costs ~0.8 s and ~27 MB to import: an app that serves no MCP request (or a
    client of the app without its lifespan) never loads it."""
    import subprocess

    code = "import sys, firesift.api.app; print(sorted(m for m in sys.modules if m == 'mcp'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

    from firesift.api.app import create_app
    from firesift.service import Service

    async def without_lifespan() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(Service(ref)))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})

    r = run_async(without_lifespan)
    assert r.status_code == 503 and "lifespan" in r.text
