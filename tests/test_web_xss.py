"""The XSS corpus (``tests/fixtures/hostile/xss.jsonl``) on every view of the page, in a real
headless Chromium against the real server of ``tests/test_web.py`` (its fixtures and helpers).

Every payload goes into a post's text, display name, media alt text and URLs, every other one
into the handle too; the posts arrive live through ``/api/ingest``, so they reach the ticker,
the watches' notifications and the trends (their words and hashtag make a story), and they are
searched, checked as a claim, opened as cards with their conversation, cited by the engine's
own answer and by a routed answer whose text and sources are hostile. Nothing may run: no
dialog, no console error, no script error, ``window.__xss`` never set, no link but http(s);
and the 5,000-character word must not make the page wider than the viewport.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, Route, expect

from test_web import (
    STREAMING,
    Server,
    _ask,
    _ingest,
    _rebased,
    _route_chat,
    base_url,
    browser_context_args,
    browser_type_launch_args,
    open_page,
    page,
    server,
)

__all__ = [  # the imported fixtures
    "base_url",
    "browser_context_args",
    "browser_type_launch_args",
    "open_page",
    "page",
    "server",
]

pytestmark = pytest.mark.browser

CORPUS = Path(__file__).parent / "fixtures" / "hostile" / "xss.jsonl"
PAYLOADS: list[dict[str, str]] = [json.loads(x) for x in CORPUS.read_text().splitlines() if x]
GROUPS = ("xssalpha", "xssbeta", "xssgamma")
ROOT_ID = "880000000000000000"
UNSAFE = (
    "main img, main script, main iframe, main object, main embed, main style, main link, "
    "#card img, #card script, #card iframe, #card object, #card embed, #card style"
)

WIDE = """w => {
  const wide = e => e.getBoundingClientRect().right > w + 1 || e.scrollWidth > w + 1;
  return [...document.querySelectorAll("body *")]
    .filter(e => wide(e) && ![...e.children].some(wide))
    .slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${e.className} ${e.textContent.length}ch`);
}"""


def _rows() -> list[dict[str, Any]]:
    """One hostile post per payload; every fifth one replies to the first."""
    rows = []
    for i, p in enumerate(PAYLOADS):
        payload = p["payload"]
        pid = f"88000000000000{i:04d}"
        reply = i % 5 == 1
        rows.append(
            {
                "id": pid,
                "created_at": "",
                "text": f"xssprobe {GROUPS[i % 3]} {payload} #xsstrend",
                "author": {
                    "id": f"x{i}",
                    "handle": payload if i % 2 == 0 else f"mallory{i}",
                    "name": payload,
                },
                "url": payload,
                "urls": [payload, "https://example.com/fine"],
                "media_alt": [payload],
                "conversation_id": ROOT_ID if reply or i == 0 else pid,
                **({"reply_to": ROOT_ID} if reply else {}),
            }
        )
    return rows


def _poison_final(page: Page, warnings: list[str], claims: list[dict[str, Any]]) -> None:
    """Lets the server answer the next question, then replaces the final chunk's warnings and
    claims with hostile ones (text a buggy or compromised model path could send)."""

    def handle(route: Route) -> None:
        response = route.fetch()
        lines = []
        for line in response.text().splitlines():
            if line.startswith("data: {") and '"search_results"' in line:
                chunk = json.loads(line[len("data: ") :])
                chunk.update(warnings=warnings, claims=claims)
                line = "data: " + json.dumps(chunk)
            lines.append(line)
        route.fulfill(response=response, body="\n".join(lines) + "\n")
        page.unroute("**/v1/chat/completions")

    page.route("**/v1/chat/completions", handle)


def _hostile_claims() -> list[dict[str, Any]]:
    long = next(p["payload"] for p in PAYLOADS if len(p["payload"]) >= 5000)
    return [
        {
            "claim": PAYLOADS[k]["payload"],
            "accounts": 2,
            "independent_accounts": 1,
            "kinds": {PAYLOADS[k + 1]["payload"]: 1},
            "citations": [1],
            "conflicts": [{"claim": 1 - j, "about": about}],
        }
        for j, (k, about) in enumerate(((0, long), (2, PAYLOADS[5]["payload"])))
    ]


class Watcher:
    """What the page did that it must not: dialogs, console errors, script errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.console: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.console.append(msg.text)

    def check(self, view: str) -> None:
        page = self.page
        assert self.dialogs == [], f"{view}: a payload opened a dialog: {self.dialogs}"
        assert self.console == [], f"{view}: console errors: {self.console}"
        assert page.evaluate("typeof window.__xss") == "undefined", f"{view}: a payload ran"
        assert page.locator(UNSAFE).count() == 0, f"{view}: markup from a payload"
        hrefs = page.locator("a[href]").evaluate_all("els => els.map(e => e.href)")
        assert all(h.startswith(("http://", "https://")) for h in hrefs), f"{view}: {hrefs}"
        for a in page.locator("a[target=_blank]").all():
            assert a.get_attribute("rel") == "noopener noreferrer"
        width = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if width[0] > width[1]:
            wide = page.evaluate(WIDE, width[1])
            raise AssertionError(f"{view}: page {width[0]}px wide in {width[1]}px: {wide}")
        card = page.locator("#card")
        if card.is_visible():
            box = card.evaluate("d => [d.scrollWidth, d.clientWidth]")
            assert box[0] <= box[1], f"{view}: card {box[0]}px wide in {box[1]}px"


@pytest.fixture(scope="module")
def hostile(server: Server) -> list[dict[str, Any]]:
    """The rows, timed over the last six minutes (the tests ingest them)."""
    return _rebased(_rows(), datetime.now(UTC) - timedelta(seconds=5), minutes=6)


@pytest.fixture
def watched(page: Page) -> Iterator[Watcher]:
    watcher = Watcher(page)
    yield watcher
    watcher.check("at the end")


def test_corpus_size() -> None:
    assert len(PAYLOADS) >= 30
    assert any(len(p["payload"]) >= 5000 and " " not in p["payload"] for p in PAYLOADS)
    assert any("\u202e" in p["payload"] for p in PAYLOADS)


def test_every_view_keeps_every_payload_inert(
    page: Page, watched: Watcher, server: Server, hostile: list[dict[str, Any]]
) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=15_000)
    page.fill("#watch-q", "xssprobe")
    page.click("#watch-form button")
    expect(page.locator("#watch-list li")).to_have_text(["matches: xssprobe"])
    assert _ingest(server, hostile)["ingested"] == len(hostile)

    # ticker: the newest 46 rows, each text as plain text
    ticker = page.locator("#ticker-list > li.row", has_text="xssprobe")
    expect(ticker).to_have_count(len(hostile), timeout=15_000)
    expect(ticker.first.locator(".row-text")).to_have_text(hostile[-1]["text"])
    watched.check("ticker")

    # watches: one alert per batch, naming the post
    expect(page.locator("#notifications li.notification").first).to_contain_text(
        "xssprobe", timeout=15_000
    )
    watched.check("notifications")

    # trends: the burst of #xsstrend is a story titled with hostile text
    story = page.locator("#stories > li.story", has_text="xssprobe").first
    expect(story).to_be_visible(timeout=30_000)
    watched.check("trends")

    # search results: every payload as a card
    for group in GROUPS:
        page.fill("#search-q", f"xssprobe {group}")
        page.press("#search-q", "Enter")
        cards = page.locator("#search-results article.post")
        expect(cards).to_have_count(sum(1 for r in hostile if group in r["text"]))
        texts = set(cards.locator(".text").all_inner_texts())
        assert texts == {r["text"] for r in hostile if group in r["text"]}
        watched.check(f"search {group}")

    # a right-to-left override in a display name must not reorder the byline after it
    bidi = next(r for r in hostile if r["author"]["name"].startswith("\u202eoverride"))
    page.fill("#search-q", "xssprobe " + bidi["text"].split()[1])
    page.press("#search-q", "Enter")
    byline = page.locator(f'#search-results article.post[data-key="x:{bidi["id"]}"] .byline')
    name, handle, when = (byline.locator(s).bounding_box() for s in (".name", ".handle", "time"))
    assert name and handle and when
    assert name["x"] < handle["x"] < when["x"], "the override reversed the byline"

    # post card and its conversation: the root, whose replies are hostile too
    page.fill("#ticker-q", "")
    root = page.locator("#ticker-list > li.row", has_text=hostile[0]["text"][:40])
    root.locator("button").click()
    card = page.locator("#card")
    expect(card.locator("article.post .text").first).to_have_text(hostile[0]["text"])
    replies = [r for r in hostile if r.get("reply_to") == ROOT_ID]
    expect(card.locator(".thread-rows > li.row")).to_have_count(len(replies))
    expect(card.locator("article.post .name").first).to_have_text(hostile[0]["author"]["name"])
    card.locator("article.post .name").first.hover()
    watched.check("post card")
    card.locator(".thread-rows > li.row button").first.click()
    expect(card.locator("article.post .text").first).to_have_text(replies[0]["text"])
    watched.check("thread reply")
    page.keyboard.press("Escape")

    # claim check: evidence rows
    page.fill("#claim", "xssprobe xsstrend")
    page.press("#claim", "Enter")
    expect(page.locator("#check-result .verdict")).to_be_visible(timeout=60_000)
    watched.check("claim check")

    # the engine's own answer: hostile post text in its sentences, claims and sources
    _poison_final(page, [p["payload"] for p in PAYLOADS], _hostile_claims())
    final = _ask(page, "What does xssprobe say about xsstrend?")
    assert final["search_results"], "the answer should cite the hostile posts"
    answer = page.locator(".turn.assistant").last
    expect(answer.locator(".sources > li")).to_have_count(len(final["search_results"]))
    watched.check("answer")
    answer.locator(".sources button").first.click()
    expect(page.locator("#card")).to_be_visible()
    watched.check("answer source card")
    page.keyboard.press("Escape")


def test_a_hostile_answer_and_hostile_sources_stay_inert(
    page: Page, watched: Watcher, server: Server
) -> None:
    """A routed answer: every payload as answer text, sources whose URL, name and handle are
    payloads (what a compromised or buggy server could send)."""
    with server.api() as client:
        found = client.get("/api/search", params={"q": "gunman", "limit": 3}).json()["results"]
    assert len(found) == 3
    results = [
        {
            **r,
            "url": PAYLOADS[k]["payload"],
            "author": {**r["author"], "name": PAYLOADS[k + 1]["payload"]},
            "text": PAYLOADS[k + 2]["payload"],
        }
        for k, r in zip((6, 11, 12), found, strict=True)
    ]
    deltas = [f"{p['payload']} [{1 + i % 3}] " for i, p in enumerate(PAYLOADS)]
    _route_chat(page, deltas, results)
    page.fill("#question", "what is xssprobe?")
    page.press("#question", "Enter")
    answer = page.locator(".turn.assistant").last
    expect(answer).not_to_have_class(STREAMING)
    markers = re.findall(r"\[(\d+)\]", "".join(deltas))
    assert len(markers) > len(PAYLOADS), "the Markdown payloads carry markers of their own"
    expect(answer.locator(".answer button.chip")).to_have_count(len(markers))
    assert PAYLOADS[0]["payload"] in answer.locator(".answer").inner_text()
    watched.check("routed answer")
    for i in range(3):
        answer.locator(".sources button").nth(i).click()
        expect(page.locator("#card")).to_be_visible()
        expect(page.locator("#card a[href^='javascript'], #card a[href^='data']")).to_have_count(0)
        watched.check(f"routed source {i + 1}")
        page.keyboard.press("Escape")


def test_long_words_do_not_widen_a_phone_screen(
    open_page: Callable[..., Page], server: Server, hostile: list[dict[str, Any]]
) -> None:
    """At 390 px: search results, an answer, a routed answer quoting the 5,000-character word
    and the post cards (copies under other ids and words, so the tests run in any order)."""
    copies = [
        {**r, "id": "89" + r["id"][2:], "text": r["text"].replace("xssprobe", "xssphone")}
        for r in hostile
    ]
    long = [r for r in copies if len(r["text"]) > 5000]
    assert len(long) >= 2
    _ingest(server, copies)
    page = open_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    watcher = Watcher(page)
    page.fill("#search-q", "xssphone")
    page.press("#search-q", "Enter")
    expect(page.locator("#search-results article.post")).to_have_count(20)
    watcher.check("phone search")
    _poison_final(page, [p["payload"] for p in PAYLOADS], _hostile_claims())
    final = _ask(page, "What does xssphone say about xsstrend?")
    assert final["search_results"] and final["warnings"][0] == PAYLOADS[0]["payload"]
    answer = page.locator(".turn.assistant").last
    expect(answer.locator(".warnings > li")).to_have_count(len(PAYLOADS))
    expect(answer.locator(".claims > li")).to_have_count(2)
    watcher.check("phone answer")
    with server.api() as client:
        found = client.get("/api/search", params={"q": "xssphone xsstrend", "limit": 50}).json()
    results = [r for r in found["results"] if len(r["text"]) > 5000]
    assert len(results) == len(long)
    _route_chat(page, [long[0]["text"], " [1] ", long[1]["text"], " [2]."], results)
    page.fill("#question", "and the long word?")
    page.press("#question", "Enter")
    answer = page.locator(".turn.assistant").last
    expect(answer).not_to_have_class(STREAMING)
    watcher.check("phone routed answer")
    for i in range(len(results)):
        answer.locator(".sources button").nth(i).click()
        expect(page.locator("#card")).to_be_visible()
        watcher.check(f"phone card {i + 1}")
        page.keyboard.press("Escape")
