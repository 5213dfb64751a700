"""The web page in a real headless Chromium against the real server in a subprocess.

The server (``firesift serve``) listens on
127.0.0.1, port 0, with a throwaway database holding the real RumourEval 2017 posts,
except the Germanwings-crash conversations: those are held back and replayed through
``/api/ingest`` with fresh timestamps, so the live panels have something to show.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPLAY_EVENT = "germanwings-crash"
QUESTION = "Is there a gunman at the Ottawa war memorial?"
STREAMING = re.compile(r"\bstreaming\b")
XSS_TEXT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> xssprobe'

pytestmark = pytest.mark.browser


@dataclass
class Server:
    url: str
    replay: list[dict[str, Any]]

    def api(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRESIFT_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "cfg"))
    return env


def _announced_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """Waits for the server's ``firesift: serving on URL`` line (it binds before announcing)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"firesift serve exited {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    raise RuntimeError(f"firesift serve did not start within 60 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server on a port the OS picks, over a database of real posts."""
    tmp = tmp_path_factory.mktemp("web")
    env = _env(tmp / "home")
    lines = (real_data / "rumoureval2017" / "posts.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    kept = tmp / "posts.jsonl"
    kept.write_text("".join(json.dumps(r) + "\n" for r in rows if r["event"] != REPLAY_EVENT))
    replay = sorted((r for r in rows if r["event"] == REPLAY_EVENT), key=lambda r: r["ts"])
    db = tmp / "db"
    cli = [sys.executable, "-m", "firesift.cli"]
    serve = [*cli, "serve"]
    done = subprocess.run(
        [*cli, "ingest", str(kept), "--db", str(db)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"firesift ingest failed:\n{done.stderr}"

    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*serve, "--db", str(db), "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Server(_announced_url(proc, log), replay)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():  # the one permitted skip (conftest folds it into one line)
        pytest.skip(NO_CHROMIUM)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-playwright's (a deprecated instance-method fixture); pages use full URLs."""
    return None


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 1366, "height": 900},
        "timezone_id": "UTC",
        "locale": "en-GB",
        "color_scheme": "light",
    }


@pytest.fixture
def page(page: Page, server: Server) -> Iterator[Page]:
    """The page, loaded, with script errors failing the test."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    yield page
    assert errors == [], f"script errors on the page: {errors}"


@pytest.fixture
def open_page(
    browser: Browser, browser_context_args: dict[str, Any], server: Server
) -> Iterator[Callable[..., Page]]:
    """Opens the page in a fresh context with some context options changed."""
    contexts: list[BrowserContext] = []

    def open_(**options: Any) -> Page:
        context = browser.new_context(**{**browser_context_args, **options})
        contexts.append(context)
        page = context.new_page()
        page.goto(server.url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield open_
    for context in contexts:
        context.close()


def _ingest(server: Server, rows: list[dict[str, Any]]) -> dict[str, Any]:
    body = "".join(json.dumps(r) + "\n" for r in rows)
    with server.api() as client:
        r = client.post(
            "/api/ingest", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
    assert r.status_code < 300, r.text
    return r.json()


def _final_chunk(sse_body: str) -> dict[str, Any]:
    """The last chunk carrying citations, with ``text``: the whole streamed answer."""
    chunks = [
        json.loads(line[len("data: ") :])
        for line in sse_body.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    final = next(c for c in reversed(chunks) if "search_results" in c or "citations" in c)
    return {**final, "text": text}


def _ask(page: Page, question: str) -> dict[str, Any]:
    """Types ``question``, sends it with Enter and returns the final chunk the page received."""
    with page.expect_response("**/v1/chat/completions") as info:
        page.fill("#question", question)
        page.press("#question", "Enter")
    expect(page.locator(".turn.assistant").last).not_to_have_class(STREAMING, timeout=60_000)
    return _final_chunk(info.value.text())


def _luminance(css_color: str) -> float:
    r, g, b = (int(float(x)) for x in css_color[css_color.index("(") + 1 : -1].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# ---- chat ----------------------------------------------------------------------------------


def test_answer_streams_with_chips_that_open_the_cited_post(page: Page, server: Server) -> None:
    final = _ask(page, QUESTION)
    results = final["search_results"]
    assert results, "the question about a well-covered event should be grounded"
    answer = page.locator(".turn.assistant").last
    expect(answer.locator(".evidence")).to_have_text(re.compile(r"^\d+ posts? from \d+ accounts?"))
    chips = answer.locator(".answer button.chip")
    expect(chips).to_have_count(len(re.findall(r"\[\d+\]", final["text"])))
    expect(answer.locator(".sources > li")).to_have_count(len(results))
    # The answer is the streamed text with each [n] marker turned into a chip showing n.
    assert answer.locator(".answer").inner_text() == re.sub(r"\[(\d+)\]", r"\1", final["text"])

    n = int(chips.first.inner_text())
    cited = results[n - 1]
    with server.api() as client:
        full = client.get(f"/api/posts/{cited['source']}/{cited['id']}").json()["post"]

    chips.first.focus()
    page.keyboard.press("Enter")
    card = page.locator("#card")
    expect(card).to_be_visible()
    post = card.locator("article.post").first
    expect(post.locator(".handle").first).to_have_text(f" @{full['author']['handle']}")
    expect(post.locator(".text")).to_have_text(full["text"])
    link = post.locator("a.original")
    expect(link).to_have_attribute("href", cited["url"])
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")

    page.keyboard.press("Escape")
    expect(card).to_be_hidden()
    expect(chips.first).to_be_focused()


def test_follow_up_sends_the_whole_conversation(page: Page) -> None:
    first = _ask(page, QUESTION)
    with page.expect_request("**/v1/chat/completions") as info:
        _ask(page, "Who reported it first?")
    assert info.value.post_data_json["messages"] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first["text"]},
        {"role": "user", "content": "Who reported it first?"},
    ]
    expect(page.locator(".turn.assistant")).to_have_count(2)


def _route_chat(page: Page, deltas: list[str], results: list[dict[str, Any]]) -> None:
    """Answers the page's next chat request with ``deltas`` citing ``results`` (real posts):
    for wire cases the extractive engine does not produce on demand."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": d}}]} for d in deltas]
    final = {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "citations": [p["url"] for p in results],
        "search_results": results,
        "evidence": {"posts": len(results), "accounts": len(results)},
        "warnings": [],
        "grounded": True,
    }
    chunks.append({**base, **final})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(body=body, content_type="text/event-stream"),
    )


def test_markers_split_across_chunks_become_whole_chips(page: Page, server: Server) -> None:
    """The wire may cut "[12]" anywhere; a marker without a returned source is disabled."""
    with server.api() as client:
        posts = client.get("/api/search", params={"q": "gunman", "limit": 2}).json()["results"]
    _route_chat(page, ["Shots fired [", "1", "] at the memorial [", "2][1", "2] and more."], posts)
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    answer = page.locator(".turn.assistant").last
    expect(answer).not_to_have_class(STREAMING)
    chips = answer.locator(".answer button.chip")
    expect(chips).to_have_text(["1", "2", "12"])
    expect(answer.locator(".answer")).to_have_text("Shots fired 1 at the memorial 212 and more.")
    expect(chips.nth(2)).to_be_disabled()
    chips.nth(1).click()
    expect(page.locator("#card .post .text")).to_have_text(posts[1]["text"])


def test_nothing_in_the_stream_answers_says_so(page: Page) -> None:
    final = _ask(page, "zqxjv wplmk ytrr bbbq?")
    assert final.get("grounded") is False
    turn = page.locator(".turn.assistant").last
    expect(turn).to_have_class(re.compile(r"\bungrounded\b"))
    expect(turn.locator(".ungrounded-badge")).to_have_text("Nothing in the stream answers this")
    expect(turn.locator(".answer button.chip")).to_have_count(0)


def test_unreachable_server_is_reported(page: Page) -> None:
    page.route("**/v1/chat/completions", lambda route: route.abort("connectionrefused"))
    page.fill("#question", QUESTION)
    page.click("#send")
    expect(page.locator(".turn.assistant .error")).to_contain_text(
        "Can't reach the firesift server"
    )
    page.unroute("**/v1/chat/completions")


# ---- live: ticker and trends ------------------------------------------------------------


def _rebased(rows: list[dict[str, Any]], end: datetime, minutes: int) -> list[dict[str, Any]]:
    """Real posts, their order kept, spread evenly over the ``minutes`` before ``end``."""
    start = end - timedelta(minutes=minutes)
    step = timedelta(minutes=minutes) / len(rows)
    return [
        {**r, "created_at": (start + i * step).isoformat().replace("+00:00", "Z"), "ts": None}
        for i, r in enumerate(rows)
    ]


def test_replay_updates_ticker_and_trends_over_sse(page: Page, server: Server) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(page.locator("#stories > li.empty")).to_contain_text("Nothing is bursting")
    rows = _rebased(server.replay, datetime.now(UTC) - timedelta(seconds=5), minutes=6)
    batches = [rows[i : i + 100] for i in range(0, len(rows), 100)]
    ticker = page.locator("#ticker-list > li.row")
    sent = 0
    for batch in batches:
        assert _ingest(server, batch)["ingested"] == len(batch)
        sent += len(batch)
        # Newest first, and capped at 50 rows.
        expect(ticker.first.locator(".row-text")).to_have_text(batch[-1]["text"], timeout=15_000)
        expect(ticker).to_have_count(min(sent, 50))
        expect(ticker.nth(1).locator(".row-text")).to_have_text(batch[-2]["text"])

    story = page.locator("#stories > li.story").first
    expect(story).to_be_visible(timeout=30_000)
    assert story.locator(".badge").text_content() in {"emerging", "peaking", "fading"}
    expect(story.locator("svg.spark polyline")).to_have_count(1)
    expect(story.locator(".term-list li").first).to_be_visible()
    expect(page.locator("#status-text")).to_contain_text("posts")


# ---- hostile content --------------------------------------------------------------------


def test_hostile_post_stays_inert(page: Page, server: Server) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=15_000)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    hostile = {
        "id": "990000000000000001",
        "created_at": now,
        "text": XSS_TEXT,
        "author": {
            "id": "66",
            "handle": "mallory",
            "name": '<b onmouseover="window.__xss=4">M</b>',
        },
        "url": "javascript:window.__xss=3",
    }
    _ingest(server, [hostile])
    row = page.locator("#ticker-list > li.row", has_text="xssprobe")
    expect(row.locator(".row-text")).to_have_text(XSS_TEXT, timeout=15_000)
    row.locator("button").click()
    card = page.locator("#card article.post").first
    expect(card.locator(".text")).to_have_text(XSS_TEXT)
    expect(card.locator(".name")).to_have_text('<b onmouseover="window.__xss=4">M</b>')
    card.locator(".name").hover()
    expect(page.locator("#card a[href^='javascript']")).to_have_count(0)
    page.keyboard.press("Escape")

    page.fill("#search-q", "xssprobe")
    page.press("#search-q", "Enter")
    result = page.locator("#search-results article.post").first
    expect(result.locator(".text")).to_have_text(XSS_TEXT)

    # Cited in an answer whose own text is hostile too.
    with server.api() as client:
        found = client.get("/api/search", params={"q": "xssprobe"}).json()["results"]
    assert found[0]["url"].startswith("https://"), "ingest drops non-web links"
    # The page defends itself too: a citation carrying a javascript: URL is not a link.
    _route_chat(page, [XSS_TEXT, " [1]"], [{**found[0], "url": "javascript:window.__xss=5"}])
    page.fill("#question", "what is xssprobe?")
    page.press("#question", "Enter")
    answer = page.locator(".turn.assistant").last
    expect(answer.locator(".answer")).to_have_text(XSS_TEXT + " 1")
    answer.locator(".answer button.chip").click()
    expect(card.locator(".text")).to_have_text(XSS_TEXT)
    # The card may show the cited copy (no link: javascript: refused) or the post as the server
    # has it (its https link); never a javascript: link.
    expect(card.locator("a[href^='javascript']")).to_have_count(0)
    for href in card.locator(".post-foot a").evaluate_all("els => els.map(e => e.href)"):
        assert href.startswith("https://")

    assert page.locator("main img, main script, #card img").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_search_without_results_says_so(page: Page) -> None:
    page.fill("#search-q", "qqzzxq")
    page.press("#search-q", "Enter")
    expect(page.locator("#search-results .empty")).to_contain_text("No posts match")


# ---- claim check and time control -------------------------------------------------------


def test_claim_check_shows_verdict_reason_and_role_counts(page: Page, server: Server) -> None:
    claim = "A soldier was shot at the Ottawa war memorial"
    with server.api(timeout=60) as client:
        expected = client.post("/api/check", json={"claim": claim}).json()
    page.fill("#claim", claim)
    page.press("#claim", "Enter")
    verdict = page.locator("#check-result .verdict")
    expect(verdict).to_have_attribute("data-verdict", expected["verdict"], timeout=60_000)
    expect(verdict.locator(".summary")).to_have_text(expected["reason"])
    for role in ("confirms", "supports", "denies", "questions", "reports", "comments"):
        accounts = expected["roles"][role]["accounts"]
        expect(verdict.locator(f".count.role-{role} dd")).to_have_text(
            re.compile(rf"^{accounts} accounts? · ")
        )
    rows = verdict.locator(".evidence-list > li")
    expect(rows).to_have_count(len(expected["evidence"]))
    if expected["evidence"]:
        expect(rows.first.locator(".badge")).to_have_text(expected["evidence"][0]["stance"])
        expect(verdict.locator(".stance-bar .seg").first).to_be_visible()


def test_post_card_shows_its_thread_with_stances_and_tally(page: Page, server: Server) -> None:
    claim = "A soldier was shot at the Ottawa war memorial"
    with server.api(timeout=60) as client:
        evidence = client.post("/api/check", json={"claim": claim}).json()["evidence"]
        threads = [client.get(f"/api/posts/{e['source']}/{e['id']}").json() for e in evidence]
    n, data = next((i, t) for i, t in enumerate(threads) if t["replies"] >= 3)
    page.fill("#claim", claim)
    page.press("#claim", "Enter")
    rows = page.locator("#check-result .evidence-list > li")
    expect(rows).to_have_count(len(evidence), timeout=60_000)
    rows.nth(n).locator("button").click()

    section = page.locator("#card .thread")
    others = [p for p in data["thread"] if p["id"] != evidence[n]["id"]]
    expect(section.locator("h3")).to_have_text(f"In this conversation ({len(others)})")
    for stance, counts in data["tally"].items():
        tally = section.locator(f".thread-tally .tally[data-stance={stance}]")
        expect(tally.locator(".badge")).to_have_text(stance)
        expect(tally.locator("strong")).to_have_text(str(counts["posts"]))
    expect(section).to_contain_text("by the stance model")
    items = section.locator(".thread-rows > li.row")
    expect(items).to_have_count(len(others))
    for i, p in enumerate(others):
        item = items.nth(i)
        expect(item.locator(".row-text")).to_have_text(p["text"])
        expect(item).to_have_attribute("data-depth", str(min(p["depth"], 6)))
        if p["stance"] is None:
            expect(item.locator(".badge")).to_have_count(0)
        else:
            expect(item.locator(".badge")).to_have_text(p["stance"])
    # a reply opens the same conversation, that reply on the card with its own stance
    reply = next(i for i, p in enumerate(others) if p["stance"])
    items.nth(reply).locator("button").click()
    card = page.locator("#card article.post").first
    expect(card.locator(".text")).to_have_text(others[reply]["text"])
    expect(card.locator(".post-foot .badge")).to_have_text(others[reply]["stance"])
    expect(section.locator(".thread-rows > li.row")).to_have_count(len(data["thread"]) - 1)
    page.keyboard.press("Escape")


def test_as_of_applies_to_search_and_trends(page: Page) -> None:
    with page.expect_request("**/api/trends?*") as trends:
        page.fill("#as-of", "2014-10-22T16:00")
        page.dispatch_event("#as-of", "change")
    assert "as_of=2014-10-22T16%3A00%3A00.000Z" in trends.value.url
    expect(page.locator("#live")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#status")).to_have_attribute("data-state", "paused")

    with page.expect_response("**/api/search?*") as info:
        page.fill("#search-q", "gunman")
        page.press("#search-q", "Enter")
    assert "as_of=2014-10-22T16%3A00%3A00.000Z" in info.value.url
    results = info.value.json()["results"]
    assert results
    assert all(r["created_at"] <= "2014-10-22T16:00:00+00:00" for r in results)
    expect(page.locator("#search-results article.post")).to_have_count(len(results))

    page.click("#live")
    expect(page.locator("#live")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#as-of")).to_have_value("")


# ---- look and layout --------------------------------------------------------------------


def test_dark_mode_follows_system_and_toggle(page: Page, open_page: Callable[..., Page]) -> None:
    def background(p: Page) -> float:
        return _luminance(p.evaluate("getComputedStyle(document.body).backgroundColor"))

    assert background(page) > 180
    toggle = page.locator("#theme")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert background(page) < 60
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")

    dark = open_page(color_scheme="dark")
    assert background(dark) < 60
    expect(dark.locator("#theme")).to_have_attribute("aria-pressed", "true")


def test_phone_layout_is_one_column_without_horizontal_scroll(
    open_page: Callable[..., Page],
) -> None:
    page = open_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    _ask(page, QUESTION)
    page.fill("#claim", "A soldier was shot at the Ottawa war memorial")
    page.press("#claim", "Enter")
    expect(page.locator("#check-result .verdict")).to_be_visible(timeout=60_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"horizontal scroll: page is {width}px wide"
    boxes = [page.locator(sel).bounding_box() for sel in ("#chat", "#check", "#trends", "#search")]
    assert all(b is not None for b in boxes)
    assert len({round(b["x"]) for b in boxes if b}) == 1, "panels should stack in one column"


def test_inputs_are_labelled_and_reachable_by_keyboard(page: Page) -> None:
    for field in ("#question", "#search-q", "#claim", "#as-of", "#ticker-q"):
        label = page.locator(f"label[for='{field[1:]}']")
        expect(label).to_have_count(1)
    page.locator("body").focus()
    seen: list[str] = []
    while "send" not in seen and len(seen) < 40:
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert seen.index("as-of") < seen.index("question") < seen.index("send")


def test_a_past_moment_replays_trends_answers_and_checks(page: Page) -> None:
    """The whole page as of the Ottawa shooting; also the screenshot for the README."""
    page.fill("#as-of", "2014-10-22T15:30")
    page.dispatch_event("#as-of", "change")
    story = page.locator("#stories > li.story").first
    expect(story).to_be_visible(timeout=30_000)
    expect(page.locator("#trends-when")).to_contain_text("as of")
    final = _ask(page, QUESTION)
    assert final["as_of"].startswith("2014-10-22T15:30")
    assert all(r["created_at"] <= "2014-10-22T15:30:00+00:00" for r in final["search_results"])
    page.fill("#claim", "A soldier was shot at the Ottawa war memorial")
    page.press("#claim", "Enter")
    expect(page.locator("#check-result .verdict")).to_be_visible(timeout=60_000)
    page.locator("#claim").blur()
    page.screenshot(path="/tmp/firesift-page.png", full_page=True)


def test_a_401_asks_for_an_api_key_and_sends_it(page: Page) -> None:
    """Off loopback the server wants a key; the page asks for one and sends it as a bearer."""
    refusal = {
        "error": {
            "message": "an API key is required",
            "type": "authentication_error",
            "param": None,
            "code": "missing_api_key",
        }
    }

    def guard(route: Route) -> None:
        if route.request.headers.get("authorization") == "Bearer fs-test":
            route.continue_()
        else:
            route.fulfill(status=401, json=refusal)

    page.route("**/api/search?*", guard)
    page.fill("#search-q", "gunman")
    page.press("#search-q", "Enter")
    expect(page.locator("#search-results .error")).to_have_text("an API key is required")
    expect(page.locator("#api-key")).to_be_focused()
    page.keyboard.type("fs-test")
    page.keyboard.press("Enter")
    expect(page.locator("#key-form")).to_be_hidden()
    page.press("#search-q", "Enter")
    expect(page.locator("#search-results article.post").first).to_be_visible()


# ---- live sources -------------------------------------------------------------------------


def test_live_sources_panel_shows_each_source_and_why_one_stopped(
    browser: Browser, browser_context_args: dict[str, Any], real_data: Path, tmp_path: Path
) -> None:
    """``firesift serve --source ...``: the panel lists every source with its state and posts,
    the reason a stopped one stopped, and follows a growing file as it grows."""
    lines = (real_data / "rumoureval2017" / "posts.jsonl").read_bytes().splitlines(True)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"".join(lines[:40]))
    missing = tmp_path / "missing.jsonl"
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "firesift.cli", "serve", "--db", str(tmp_path / "db")]
    cmd += ["--port", "0", "--source", f"file:{feed}?follow=true&poll=0.05&name=archive"]
    cmd += ["--source", f"file:{missing}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=_env(tmp_path / "home"), stdout=out, stderr=out)
    context = browser.new_context(**browser_context_args)
    try:
        url = _announced_url(proc, log)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        archive = page.locator('#feeds-list > li[data-key="archive"]')
        expect(archive.locator(".feed-state")).to_have_text("connected", timeout=15_000)
        expect(archive.locator(".feed-figures")).to_contain_text("40 posts", timeout=15_000)
        stopped = page.locator(f'#feeds-list > li[data-key="file:{missing}"]')
        expect(stopped.locator(".feed-state")).to_have_text("stopped")
        expect(stopped.locator(".feed-why")).to_have_text(f"no such file: {missing}")
        http = page.locator('#feeds-list > li[data-key="http"]')
        expect(http.locator(".feed-name")).to_have_text("http (POST /api/ingest)")
        expect(http.locator(".feed-state")).to_have_text("connected")
        with feed.open("ab") as fh:
            fh.write(b"".join(lines[40:55]))
        expect(archive.locator(".feed-figures")).to_contain_text("55 posts", timeout=15_000)
        page.screenshot(path=str(tmp_path / "feeds.png"), full_page=True)
        assert errors == [], f"script errors on the page: {errors}"
    finally:
        context.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_answer_lists_its_claims_with_counts_and_conflicts(page: Page) -> None:
    page.fill("#as-of", "2014-10-23T00:00")
    page.locator("#as-of").dispatch_event("change")
    final = _ask(page, "Has the Ottawa gunman been identified?")
    claims = final["claims"]
    assert claims and claims[0]["accounts"] > 1
    answer = page.locator(".turn.assistant").last
    items = answer.locator(".claims > li")
    expect(items).to_have_count(len(claims))
    for k, claim in enumerate(claims):
        item = items.nth(k)
        expect(item.locator(".claim-text")).to_have_text(claim["claim"])
        n, independent = claim["accounts"], claim["independent_accounts"]
        count = "one account" if n == 1 else f"{n} accounts"
        if independent < n:
            count += f", {independent} independent"
        expect(item.locator(".claim-count")).to_have_text(count)
        expect(item.locator("button.chip")).to_have_count(len(claim["citations"]))
        expect(item.locator(".conflict-badge")).to_have_text(
            [f"conflicts with claim {x['claim'] + 1}: {x['about']}" for x in claim["conflicts"]]
        )
    items.first.locator("button.chip").first.click()
    expect(page.locator("#card")).to_be_visible()
