"""``rss``: RSS 2.0 and Atom polling against a local server serving real recorded feeds:
every entry stored once with its link, conditional GETs answered 304, a new entry picked up,
restarts resuming from the stored ETag, OPML lists of several feeds, ``<ttl>``, and faults
(429 with Retry-After, 500, a page that is not a feed, 404)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from fake_feeds import ERROR_PAGE, Entry, FakeFeeds, entries, recorded, running, without_newest
from firesift.config import Settings
from firesift.errors import ConfigError
from firesift.post import Post
from firesift.service import Service
from firesift.sources import SourceSpec, get
from firesift.sources.rss import RssSource, feeds_from_opml
from source_harness import live_service, source, status, stored_ids, wait_for

GUARDIAN = "/world/rss.rss"
HEISE = "/developer/news-atom.atom"


@pytest.fixture
def server() -> Iterator[FakeFeeds]:
    with running() as feeds:
        yield feeds


@pytest.fixture(scope="module")
def guardian(fixtures_dir: Path) -> bytes:
    return recorded(fixtures_dir, "guardian.rss")


@pytest.fixture(scope="module")
def heise(fixtures_dir: Path) -> bytes:
    return recorded(fixtures_dir, "heise.atom")


def rss(uri: str) -> RssSource:
    """The source of ``uri``, configured as ``firesift up --source URI`` does once the registry
    has found it (see the registry test)."""
    src = RssSource.configure(SourceSpec.parse(uri), Settings())
    assert isinstance(src, RssSource)
    return src


def posts(service: Service) -> dict[str, Post]:
    return {p.id: p for p in service.db.store.iter_posts(source="rss")}


def ids(want: list[Entry]) -> dict[tuple[str, str], int]:
    """Each recorded entry once: what ``stored_ids`` must equal."""
    return {("rss", e.id): 1 for e in want}


def answered(server: FakeFeeds, path: str, code: int, n: int = 1) -> bool:
    return sum(r.status == code for r in server.requests_for(path)) >= n


def opml(tmp_path: Path, *urls: str) -> Path:
    """An OPML 2.0 subscription list as feed readers export it: feeds nested in a folder."""
    outlines = "".join(
        f'<outline type="rss" text="feed {i}" xmlUrl="{u}"/>' for i, u in enumerate(urls)
    )
    path = tmp_path / "feeds.opml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><head><title>subs</title>'
        f'</head><body><outline text="News">{outlines}</outline></body></opml>\n'
    )
    return path


@pytest.mark.parametrize("name", ["guardian.rss", "heise.atom"])
def test_every_entry_is_stored_once_as_a_post_with_its_link(
    tmp_path: Path, server: FakeFeeds, fixtures_dir: Path, name: str
) -> None:
    body = recorded(fixtures_dir, name)
    want = entries(body)
    assert len(want) >= 15
    path = f"/{name}"
    server.serve(path, body)
    src = rss(f"rss:{server.url(path)}?every=0.05")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: stored_ids(service) == ids(want), what="every recorded entry")
        stored = posts(service)
        st = status(service, src.spec.key)
    for e in want:
        post = stored[e.id]
        assert post.url == e.link and post.urls[0] == e.link
        assert post.text.startswith(" ".join(e.title.split()) + "\n\n")
        assert "<p" not in post.text and "&lt;" not in post.text and "&amp;" not in post.text
        assert post.created_at == e.at
    assert st["state"] == "connected" and st["errors"] == 0 and st["skipped"] == 0
    if name == "guardian.rss":  # bylines are the accounts; an unsigned entry is the site's
        first = stored[want[0].id]
        assert first.author.handle == "theguardian.com"
        assert first.author.name == "David Smith in Washington"
        assert first.author.id == "theguardian.com/David Smith in Washington"
        assert {p.author.handle for p in stored.values()} == {"theguardian.com"}
        assert len({p.author.id for p in stored.values()}) > 10
        assert first.lang == "en-gb"
    else:  # Atom: entries inherit the feed's author; updated after published is an edit time
        assert {p.author.name for p in stored.values()} == {"heise online"}
        wildfly = stored["http://heise.de/-3088438"]
        assert wildfly.created_at.isoformat() == "2016-02-01T16:22:00+00:00"
        assert wildfly.edited_at is not None
        assert wildfly.edited_at.isoformat() == "2016-02-01T16:54:50+00:00"
        assert stored["http://heise.de/-3088627"].edited_at is None


def test_later_polls_are_conditional_and_a_304_stores_nothing(
    tmp_path: Path, server: FakeFeeds, guardian: bytes
) -> None:
    etag = server.serve(GUARDIAN, guardian)
    src = rss(f"rss:{server.url(GUARDIAN)}?every=0.05")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: answered(server, GUARDIAN, 304, 3), what="three 304s")
        wait_for(lambda: status(service, src.spec.key)["posts"] == 55, what="counted")
        st = status(service, src.spec.key)
        assert stored_ids(service) == ids(entries(guardian))
    first, *later = server.requests_for(GUARDIAN)
    assert first.status == 200
    assert "if-none-match" not in first.headers and "if-modified-since" not in first.headers
    assert "firesift" in first.headers["user-agent"]
    for r in later[:3]:
        assert r.headers["if-none-match"] == etag
        assert r.headers["if-modified-since"] == server.last_modified(GUARDIAN)
        assert r.status == 304
    assert st["posts"] == 55 and st["duplicates"] == 0 and st["batches"] == 1
    assert orjson.loads(st["cursor"])[server.url(GUARDIAN)]["etag"] == etag


def test_a_new_entry_is_picked_up_on_the_next_poll(
    tmp_path: Path, server: FakeFeeds, guardian: bytes
) -> None:
    earlier, newest = without_newest(guardian)
    want = entries(guardian)
    server.serve(GUARDIAN, earlier)
    src = rss(f"rss:{server.url(GUARDIAN)}?every=0.05")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: len(stored_ids(service)) == len(want) - 1, what="the earlier version")
        assert ("rss", newest.id) not in stored_ids(service)
        wait_for(lambda: answered(server, GUARDIAN, 304), what="a 304")
        etag = server.serve(GUARDIAN, guardian)
        wait_for(lambda: stored_ids(service) == ids(want), what="the new entry")
        wait_for(lambda: status(service, src.spec.key)["posts"] == len(want), what="counted")
        st = status(service, src.spec.key)
        assert posts(service)[newest.id].url == newest.link
    assert st["posts"] == len(want) and st["duplicates"] == 0  # the others were not resent
    assert orjson.loads(st["cursor"])[server.url(GUARDIAN)]["etag"] == etag


def test_a_restart_resumes_with_the_stored_etag(
    tmp_path: Path, server: FakeFeeds, guardian: bytes
) -> None:
    etag = server.serve(GUARDIAN, guardian)
    uri = f"rss:{server.url(GUARDIAN)}?every=0.05"
    want = ids(entries(guardian))
    with live_service(tmp_path, rss(uri)) as service:
        wait_for(lambda: stored_ids(service) == want, what="every entry")
        wait_for(lambda: answered(server, GUARDIAN, 304), what="a 304")
    before = len(server.requests_for(GUARDIAN))
    src = rss(uri)
    with live_service(tmp_path, src) as service:
        wait_for(lambda: len(server.requests_for(GUARDIAN)) > before, what="a poll")
        wait_for(lambda: status(service, src.spec.key)["state"] == "connected", what="connected")
        assert stored_ids(service) == want
        assert status(service, src.spec.key)["posts"] == 0
    resumed = server.requests_for(GUARDIAN)[before]
    assert resumed.headers["if-none-match"] == etag and resumed.status == 304


def test_a_restart_after_the_feed_changed_stores_only_the_new_entry(
    tmp_path: Path, server: FakeFeeds, heise: bytes
) -> None:
    earlier, newest = without_newest(heise)
    old = server.serve(HEISE, earlier)
    uri = f"rss:{server.url(HEISE)}?every=0.05"
    with live_service(tmp_path, rss(uri)) as service:
        wait_for(lambda: len(stored_ids(service)) == 14, what="the earlier version")
        wait_for(lambda: answered(server, HEISE, 304), what="a 304")
    server.serve(HEISE, heise)
    before = len(server.requests_for(HEISE))
    src = rss(uri)
    with live_service(tmp_path, src) as service:
        wait_for(lambda: stored_ids(service) == ids(entries(heise)), what="the new entry")
        wait_for(lambda: status(service, src.spec.key)["posts"] == 1, what="counted")
        st = status(service, src.spec.key)
    resumed = server.requests_for(HEISE)[before]
    assert resumed.headers["if-none-match"] == old and resumed.status == 200
    assert st["posts"] == 1 and st["duplicates"] == 0
    assert newest.id == "http://heise.de/-3088438"


def test_an_opml_list_polls_each_feed_with_its_own_state(
    tmp_path: Path, server: FakeFeeds, guardian: bytes, heise: bytes
) -> None:
    tags = {GUARDIAN: server.serve(GUARDIAN, guardian), HEISE: server.serve(HEISE, heise)}
    urls = [server.url(GUARDIAN), server.url(HEISE), server.url(GUARDIAN)]
    path = opml(tmp_path, *urls)
    assert feeds_from_opml(path) == urls[:2]  # nested outlines, in order, repeats dropped
    src = rss(f"rss:opml:{path}?every=0.05")
    want = ids(entries(guardian)) | ids(entries(heise))
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: stored_ids(service) == want, what="both feeds")
        for p in tags:
            wait_for(lambda p=p: answered(server, p, 304), what=f"a 304 for {p}")
        wait_for(lambda: status(service, src.spec.key)["posts"] == len(want), what="counted")
        st = status(service, src.spec.key)
    cursor = orjson.loads(st["cursor"])  # one JSON map, each feed its own validators
    assert {u: cursor[u]["etag"] for u in urls[:2]} == {server.url(p): t for p, t in tags.items()}
    assert [len(cursor[u]["seen"]) for u in urls[:2]] == [55, 15]
    for p, etag in tags.items():
        assert [r.headers.get("if-none-match") for r in server.requests_for(p)][:2] == [None, etag]
    assert st["errors"] == 0 and st["skipped"] == 0


def test_a_longer_ttl_slows_a_feed_and_bare_guids_are_scoped_to_their_feed(
    tmp_path: Path, server: FakeFeeds, heise: bytes, fixtures_dir: Path
) -> None:
    server.serve("/element.rss", recorded(fixtures_dir, "rss_2.0_element_io.xml"))  # ttl 60
    server.serve("/bbc.rss", recorded(fixtures_dir, "rss_2.0_bbc.xml"))
    server.serve(HEISE, heise)
    element, bbc = server.url("/element.rss"), server.url("/bbc.rss")
    src = rss(f"rss:opml:{opml(tmp_path, element, bbc, server.url(HEISE))}?every=0.05")
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: answered(server, HEISE, 304, 5), what="heise polled five more times")
        wait_for(lambda: answered(server, "/bbc.rss", 304, 5), what="bbc polled five more times")
        stored = posts(service)
    assert len(server.requests_for("/element.rss")) == 1  # next poll in 60 minutes
    post = stored[f"{element}#61640fa79cbf4600010d7933"]  # isPermaLink="false"
    assert post.author.name == "Steve Loynes" and post.author.handle == "element.io"
    episode = stored["urn:bbc:podcast:m000sjxt"]
    assert episode.urls == (
        "http://www.bbc.co.uk/programmes/m000sjxt",
        "http://open.live.bbc.co.uk/mediaselector/6/redir/version/2.0/mediaset/"
        "audio-nondrm-download/proto/http/vpid/p097wt5b.mp3",
    )
    assert episode.author.name == "BBC Radio 4"


@pytest.mark.parametrize("code", [429, 503])
def test_429_and_503_wait_for_retry_after(
    tmp_path: Path, server: FakeFeeds, heise: bytes, code: int
) -> None:
    server.serve(HEISE, heise)
    server.fail(HEISE, code, retry_after="100")
    src = rss(f"rss:{server.url(HEISE)}?every=0.05")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: stored_ids(service) == ids(entries(heise)), what="every entry")
        wait_for(lambda: status(service, src.spec.key)["posts"] == 15, what="counted")
        st = status(service, src.spec.key)
    limited, retried = server.requests_for(HEISE)[:2]
    assert (limited.status, retried.status) == (code, 200)
    # Retry-After: 100 s at the tests' hundredfold back-off is 1 s; the schedules alone would
    # wait 0.6 s (rate limit) or 0.05 s (HTTP error)
    assert retried.at - limited.at >= 0.9
    assert st["errors"] == 1 and st["reconnects"] == 1
    assert st["last_error"].startswith(f"{server.url(HEISE)}: HTTP {code}")


def test_500_retries_and_loses_nothing(tmp_path: Path, server: FakeFeeds, heise: bytes) -> None:
    server.serve(HEISE, heise)
    server.fail(HEISE, 500, times=2)
    src = rss(f"rss:{server.url(HEISE)}?every=0.05")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: stored_ids(service) == ids(entries(heise)), what="every entry")
        wait_for(lambda: status(service, src.spec.key)["posts"] == 15, what="counted")
        st = status(service, src.spec.key)
    assert [r.status for r in server.requests_for(HEISE)][:3] == [500, 500, 200]
    assert st["errors"] == 2 and st["reconnects"] == 2 and "HTTP 500" in st["last_error"]
    assert st["state"] == "connected"


def test_a_page_that_is_not_a_feed_is_reported_and_polling_goes_on(
    tmp_path: Path, server: FakeFeeds, heise: bytes
) -> None:
    server.serve(HEISE, ERROR_PAGE, "text/html")
    src = rss(f"rss:{server.url(HEISE)}?every=0.05")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: status(service, src.spec.key)["skipped"] >= 2, what="two problems")
        st = status(service, src.spec.key)
        assert st["last_problem"].startswith(f"{server.url(HEISE)}: not an RSS or Atom feed")
        assert st["state"] == "connected" and st["errors"] == 0 and not stored_ids(service)
        server.serve(HEISE, heise)  # the publisher fixed it
        wait_for(lambda: stored_ids(service) == ids(entries(heise)), what="every entry")


def test_in_an_opml_list_a_bad_feed_is_reported_backed_off_and_the_others_go_on(
    tmp_path: Path, server: FakeFeeds, heise: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server.serve("/broken.rss", ERROR_PAGE, "text/html")
    server.serve(HEISE, heise)
    broken, gone = server.url("/broken.rss"), server.url("/gone.rss")  # /gone.rss: 404
    src = rss(f"rss:opml:{opml(tmp_path, broken, gone, server.url(HEISE))}?every=0.05")

    def reported(*parts: str) -> bool:  # the runner logs every problem; status shows the last
        return any(all(p in r.getMessage() for p in parts) for r in list(caplog.records))

    with caplog.at_level("WARNING", "firesift.sources"), live_service(tmp_path / "db", src) as s:
        wait_for(lambda: stored_ids(s) == ids(entries(heise)), what="the good feed")
        wait_for(lambda: reported(f"{gone}: HTTP 404 Not Found: the feed does not exist"))
        wait_for(lambda: reported(f"{broken}: not an RSS or Atom feed (text/html"))
        wait_for(lambda: reported(broken, "next try in 0.2 s"), what="a doubled wait")
        wait_for(lambda: answered(server, HEISE, 304, 3), what="the good feed still polled")
        wait_for(lambda: status(s, src.spec.key)["skipped"] >= 4, what="four problems counted")
        st = status(s, src.spec.key)
    assert st["state"] == "connected" and st["errors"] == 0


def test_404_stops_a_single_feed_with_the_reason(tmp_path: Path, server: FakeFeeds) -> None:
    src = rss(f"rss:{server.url('/missing.rss')}")
    with live_service(tmp_path, src) as service:
        wait_for(lambda: status(service, src.spec.key)["state"] == "stopped", what="stopped")
        st = status(service, src.spec.key)
    assert st["reason"] == (
        f"{server.url('/missing.rss')}: HTTP 404 Not Found: the feed does not exist (check the URL)"
    )
    assert len(server.requests_for("/missing.rss")) == 1


def test_a_missing_opml_file_stops_the_source(tmp_path: Path) -> None:
    src = rss(f"rss:opml:{tmp_path / 'nope.opml'}")
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, src.spec.key)["state"] == "stopped", what="stopped")
        assert "cannot read the OPML file" in status(service, src.spec.key)["reason"]


def test_the_rss_source_is_registered() -> None:
    assert get("rss") is RssSource
    assert isinstance(source("rss:https://example.org/feed.xml"), RssSource)


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="every must be more than 0"):
        rss("rss:https://example.org/feed.xml?every=0")
    with pytest.raises(ConfigError, match="not an http"):
        rss("rss:ftp://example.org/feed.xml")
    with pytest.raises(ConfigError, match="unknown option"):
        rss(f"rss:opml:{tmp_path}/feeds.opml?evrey=5")
    with pytest.raises(ConfigError, match="lists no feed"):
        feeds_from_opml(opml(tmp_path))
    # an unknown key of a feed URL stays part of that URL
    assert rss("rss:https://example.org/feed?format=atom&every=5").url == (
        "https://example.org/feed?format=atom"
    )
