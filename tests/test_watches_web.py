"""The page's watches panel in a real headless browser: a watch added from the page, its
alerts listed as real posts arrive (the SSE stream of /api/watches/{id}/events)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from firesift.api.app import create_app
from firesift.api.server import serve_in_thread
from firesift.database import Database
from firesift.formats import Problem, read
from firesift.matcher import PostView, compile_matcher
from firesift.post import Post
from firesift.service import Service

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():  # the one permitted skip (conftest folds it into one line)
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def base_url() -> None:
    return None


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    service = Service(Database(tmp_path / "db"), owns_db=True, trends=False).start()
    try:
        with serve_in_thread(create_app(service)) as base:
            yield base
    finally:
        service.stop()


def test_a_watch_added_on_the_page_lists_its_alerts(page: Page, url: str, real_data: Path) -> None:
    lines = (real_data / "rumoureval2017" / "posts.jsonl").read_text().splitlines()
    rows = sorted((json.loads(x) for x in lines), key=lambda r: r["ts"])
    siege = [r for r in rows if r["event"] == "sydneysiege"][:300]
    body = "".join(json.dumps(r) + "\n" for r in siege).encode()
    posts = [
        e
        for item in read(io.BytesIO(body))
        if not isinstance(item, Problem)
        for e in item.events
        if isinstance(e, Post)
    ]
    match = compile_matcher("#sydneysiege")
    assert match is not None
    hits = [p for p in posts if match(PostView(p))]
    assert len(hits) >= 3

    page.goto(url + "/")
    page.fill("#watch-q", "#sydneysiege")
    page.click("#watch-form button")
    expect(page.locator("#watch-list li")).to_have_text(["matches: #sydneysiege"])
    r = httpx.post(f"{url}/api/ingest", content=body, timeout=60)
    assert r.json()["ingested"] == len(siege)
    items = page.locator("#notifications li.notification")
    expect(items).to_have_count(len(hits), timeout=30_000)
    newest = hits[-1]
    expect(items.first).to_contain_text(newest.text[:40])
    expect(items.first).to_contain_text(f"@{newest.author.handle}")
