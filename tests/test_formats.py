"""Parsers and registry, checked field by field against the real recorded payloads."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson
import pytest

from firesift.errors import NotFound, ParseError, UnknownFormat
from firesift.formats import FORMATS, detect, get, names, register, unregister
from firesift.formats.canonical import Canonical
from firesift.formats.jetstream import Jetstream
from firesift.formats.mastodon import Mastodon, html_to_text, parse_stream_event
from firesift.formats.reader import Parsed, Problem, read
from firesift.formats.twitter_v1 import TwitterV1
from firesift.formats.x_v2 import XV2
from firesift.post import Delete, Event, Identity, Metrics, MetricsUpdate, Post

V2 = "x_api_v2/twarc_csv_testdata"
CASSETTES = "x_api_v2/tweepy_cassettes"
THREAD = "twitter_v1.1/charliehebdo_552783667052167168"


def events(path: Path, *, skip_problems: bool = False) -> list[Event]:
    out: list[Event] = []
    for item in read(path):
        if isinstance(item, Problem) and skip_problems:
            continue
        assert isinstance(item, Parsed), item
        out.extend(item.events)
    return out


def posts(path: Path, *, skip_problems: bool = False) -> dict[str, Post]:
    return {e.id: e for e in events(path, skip_problems=skip_problems) if isinstance(e, Post)}


def line(path: Path, number: int) -> dict[str, Any]:
    with path.open("rb") as fh:
        for i, raw in enumerate(fh, 1):
            if i == number:
                obj: dict[str, Any] = orjson.loads(raw)
                return obj
    raise AssertionError(f"{path} has no line {number}")


def body(path: Path) -> Any:
    return json.loads(path.read_text())["body"]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def objects(path: Path) -> Iterator[dict[str, Any]]:
    """Every JSON object a payload file holds, containers unwrapped."""

    def unwrap(value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, list):
            for item in value:
                yield from unwrap(item)
        elif isinstance(value, dict):
            if "response_status" in value:
                yield from unwrap(value["body"])
            else:
                yield value

    if path.suffix == ".jsonl":
        for raw in path.read_bytes().splitlines():
            try:
                yield from unwrap(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
    else:
        yield from unwrap(orjson.loads(path.read_bytes()))


# -- registry ---------------------------------------------------------------------------------


def test_builtins_registered_most_specific_first_canonical_last() -> None:
    assert names() == ["jetstream", "mastodon", "twitter_v1", "x_v2", "canonical"]
    assert list(FORMATS) == names()
    assert isinstance(get("x_v2"), XV2)


def test_get_unknown_lists_valid_names_from_the_registry() -> None:
    with pytest.raises(NotFound) as err:
        get("tiktok")
    message = str(err.value)
    assert "'tiktok'" in message
    for name in FORMATS:
        assert name in message


class _Plugin:
    name = "plugin_fmt"

    def sniff(self, obj: dict[str, Any]) -> bool:
        return "plugin_payload" in obj

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        return []


def test_plugin_registers_like_a_builtin_and_shows_in_errors() -> None:
    plugin = register(_Plugin())
    try:
        assert get("plugin_fmt") is plugin
        assert detect({"plugin_payload": 1}) is plugin
        with pytest.raises(NotFound, match="plugin_fmt"):
            get("nope")
        with pytest.raises(ValueError, match="already registered"):
            register(_Plugin())
    finally:
        unregister("plugin_fmt")
    assert "plugin_fmt" not in FORMATS


def test_detect_unknown_shape_names_the_keys() -> None:
    with pytest.raises(UnknownFormat, match="keys: captured_at"):
        detect({"captured_at": "2026-07-04T14:39:14Z"})


def test_sniffs_are_disjoint_on_every_fixture_object(fixtures_dir: Path, real_data: Path) -> None:
    """The reader tries the previous line's format first, which is only safe if no two
    formats claim the same object."""
    not_payloads = {"manifest.json", "subscribeEvents.lexicon.json"}  # descriptions, not events
    files = [p for p in fixtures_dir.rglob("*.json*") if p.name not in not_payloads]
    files += [
        real_data / "rumoureval2017/posts.jsonl",
        real_data / "pheme9/source_tweets.jsonl",
    ]
    claims: Counter[str] = Counter()
    checked = 0
    for path in files:
        for obj in objects(path):
            owners = [f.name for f in FORMATS.values() if f.sniff(obj)]
            assert len(owners) == 1, (path.name, owners, list(obj)[:6])
            claims[owners[0]] += 1
            checked += 1
    assert checked > 9_500
    assert set(claims) == set(FORMATS)


def test_detect_tries_the_hint_but_never_lets_canonical_steal(fixtures_dir: Path) -> None:
    tweet = body(fixtures_dir / CASSETTES / "test_client_get_tweet__0.json")["data"]
    canonical = get("canonical")
    assert detect(tweet, canonical).name == "x_v2"
    status = line(fixtures_dir / V2 / "flat.jsonl", 1)
    assert detect(status, canonical).name == "x_v2"


# -- X API v2 ---------------------------------------------------------------------------------


def test_x_v2_stream_line_quote_author_and_expanded_links(fixtures_dir: Path) -> None:
    got = posts(fixtures_dir / V2 / "streaming_output_with_error.jsonl", skip_problems=True)
    assert len(got) == 7
    p = got["1377650090978992134"]
    assert p.source == "x"
    assert p.author.handle == "blackheart_265"
    assert p.author.id == "4602771083"
    assert p.author.followers == 881
    assert p.url == "https://x.com/blackheart_265/status/1377650090978992134"
    assert p.created_at == utc(2021, 4, 1, 15, 52, 31)
    assert p.quote_of == "1377640162566496258"
    assert "t.co" not in p.text
    assert p.text == (
        "Fury https://twitter.com/blackheart_265/status/1377650090978992134/photo/1 "
        "https://twitter.com/Manie_DS/status/1377640162566496258"
    )
    assert p.urls == ("https://twitter.com/Manie_DS/status/1377640162566496258",)
    tagged = got["1377650387579248643"]
    assert tagged.hashtags == ("dogsoftwitter", "dogs")


def test_x_v2_retweet_takes_the_originals_full_text(fixtures_dir: Path) -> None:
    raw = line(fixtures_dir / V2 / "noflat.jsonl", 1)
    original = next(t for t in raw["includes"]["tweets"] if t["id"] == "1380175475545362437")
    p = posts(fixtures_dir / V2 / "noflat.jsonl")["1380242611781386245"]
    assert p.repost_of == "1380175475545362437"
    assert p.text == original["text"]
    assert not p.text.startswith("RT @")
    assert p.author.handle == "Alexandravm12"
    assert p.lang == "es"
    assert p.metrics.reposts == 410


def test_x_v2_flattened_twarc_lines_match_the_response_pages(fixtures_dir: Path) -> None:
    paged = posts(fixtures_dir / V2 / "noflat.jsonl")
    flat = posts(fixtures_dir / V2 / "flat.jsonl")
    assert len(flat) == len(paged) == 100
    assert flat == paged


def test_x_v2_edit_of_lists_only_earlier_versions(fixtures_dir: Path) -> None:
    newer = posts(fixtures_dir / V2 / "edited.jsonl")["1576994789110992896"]
    assert newer.edit_of == ("1576994746135764992",)
    assert newer.edited_at == utc(2022, 10, 3, 17, 57, 11)
    assert newer.created_at.replace(microsecond=0) == utc(2022, 10, 3, 17, 57, 1)
    assert newer.lang is None  # "qst": X's code for undetermined
    older = posts(fixtures_dir / V2 / "edited_before.jsonl")["1576994746135764992"]
    assert older.edit_of == ()
    assert older.edited_at is None
    assert older.media_alt == ("selfie of me with memoji",)
    assert older.author.verified


def test_x_v2_reply_quote_and_mentions(fixtures_dir: Path) -> None:
    p = posts(fixtures_dir / V2 / "quoted_edit.jsonl")["1576995594388000768"]
    assert p.reply_to == "1576994789110992896"
    assert p.conversation_id == "1576994789110992896"
    assert p.quote_of == "1576994746135764992"
    assert p.mentions == ("wongmjane",)
    assert p.author.handle == "dappdavid99"


def test_x_v2_metrics_views_and_verified_type(fixtures_dir: Path) -> None:
    p = posts(fixtures_dir / V2 / "verified_type.jsonl")["1603823063690199040"]
    assert p.metrics == Metrics(likes=745, reposts=104, replies=37, quotes=24, views=139075)
    assert p.author.verified
    assert p.author.followers == 556601


def test_x_v2_media_link_expanded_in_text_not_listed_in_urls(fixtures_dir: Path) -> None:
    p = posts(fixtures_dir / V2 / "media_tweet.jsonl")["1558553189766631429"]
    assert p.text.endswith("https://twitter.com/IgorBrigadir/status/1558553189766631429/video/1")
    assert p.urls == ()


def test_x_v2_entities_are_unescaped_and_withheld_tweets_are_posts(fixtures_dir: Path) -> None:
    got = posts(fixtures_dir / V2 / "withheld.jsonl")
    assert "social welfare & spiritual" in got["1404393588541202433"].text
    assert "&amp;" not in "".join(p.text for p in got.values())
    assert "1388424788171841537" in got
    assert got["1388424788171841537"].urls == ("http://econ.st/3u72y2l",)


def test_x_v2_default_fields_time_from_snowflake(fixtures_dir: Path) -> None:
    p = posts(fixtures_dir / CASSETTES / "test_client_get_tweet__0.json")["1293593516040269825"]
    assert p.created_at == datetime(2020, 8, 12, 17, 1, 42, 686000, tzinfo=UTC)
    assert p.author.handle == ""
    assert p.url == "https://x.com/i/web/status/1293593516040269825"
    assert p.hashtags == ()


@pytest.mark.parametrize(
    "path",
    [
        f"{V2}/counts.jsonl",
        f"{V2}/users.jsonl",
        f"{V2}/lists.jsonl",
        f"{V2}/users_compliance.jsonl",
        f"{CASSETTES}/test_client_get_users__0.json",
        f"{CASSETTES}/test_client_get_all_tweets_count__0.json",
    ],
)
def test_x_v2_non_post_payloads_carry_no_events(fixtures_dir: Path, path: str) -> None:
    items = list(read(fixtures_dir / path))
    assert items and all(isinstance(i, Parsed) and i.events == [] for i in items)


def test_x_v2_errors_only_object_is_not_an_error(fixtures_dir: Path) -> None:
    raw = line(fixtures_dir / V2 / "withheld.jsonl", 3)
    assert XV2().parse({"errors": raw["errors"]}) == []


def test_x_v2_tweet_compliance_becomes_deletes(fixtures_dir: Path) -> None:
    got = events(fixtures_dir / V2 / "tweets_compliance.jsonl")
    assert got == [
        Delete(source="x", id="1170025343920402432", reason="protected"),
        Delete(
            source="x",
            id="1170147183095664640",
            at=datetime(2021, 8, 17, 17, 26, 15, 788000, tzinfo=UTC),
            reason="deactivated",
        ),
    ]


def test_x_v2_compliance_stream_events() -> None:
    fmt = XV2()
    event = {"tweet": {"id": "1", "author_id": "2"}, "event_at": "2021-01-01T00:00:00.000Z"}
    delete = {"data": {"delete": event}}
    assert fmt.sniff(delete)
    assert fmt.parse(delete) == [Delete(source="x", id="1", at=utc(2021, 1, 1), reason="deleted")]
    assert fmt.parse({"data": {"user_delete": {"user": {"id": "2"}}}}) == []
    with pytest.raises(ParseError):
        fmt.parse({"data": {"something": {}}})


def test_x_v2_page_totals(fixtures_dir: Path) -> None:
    assert len(posts(fixtures_dir / V2 / "2sets.jsonl")) == 200
    assert len(posts(fixtures_dir / V2 / "entities_test.jsonl")) == 474
    assert len(events(fixtures_dir / V2 / "withheld.jsonl")) == 215
    assert len(posts(fixtures_dir / CASSETTES / "test_client_get_home_timeline__0.json")) == 98


# -- Twitter v1.1 -----------------------------------------------------------------------------


def test_v1_source_tweet(fixtures_dir: Path) -> None:
    p = posts(fixtures_dir / THREAD / "source-tweet/552783667052167168.json")["552783667052167168"]
    assert p.source == "x"
    assert p.author.handle == "euronews"
    assert p.author.verified
    assert p.author.followers == 129573
    assert p.created_at == utc(2015, 1, 7, 11, 7, 51)
    assert p.metrics.likes == 38
    assert p.metrics.reposts == 486
    assert p.hashtags == ("charliehebdo",)
    assert p.text.endswith(
        "witnesses http://twitter.com/euronews/status/552783667052167168/photo/1"
    )
    assert p.urls == ()
    assert p.url == "https://x.com/euronews/status/552783667052167168"
    assert p.lang == "en"


def test_v1_reply_chain(fixtures_dir: Path) -> None:
    replies = {}
    for path in (fixtures_dir / THREAD / "replies").glob("*.json"):
        replies.update(posts(path))
    assert len(replies) == 5
    assert replies["552785374507175936"].reply_to == "552783667052167168"
    assert replies["552786226546495488"].reply_to == "552785374507175936"
    assert replies["552786226546495488"].mentions == ("j0nathandavis",)
    assert replies["552789345628069888"].author.handle == "J0nathanDavis"


def test_v1_retweet_is_the_retweeters_post_with_the_originals_text(fixtures_dir: Path) -> None:
    source = json.loads(
        (fixtures_dir / THREAD / "source-tweet/552783667052167168.json").read_text()
    )
    reply = json.loads((fixtures_dir / THREAD / "replies/552792862610694144.json").read_text())
    retweet = {
        **reply,
        "text": "RT @euronews: France: 10 people dead after\u2026",
        "retweeted_status": source,
    }
    [p] = TwitterV1().parse(retweet)
    assert isinstance(p, Post)
    assert p.repost_of == "552783667052167168"
    assert p.author.handle == "DrewEdgar_CB"
    assert p.text.startswith("France: 10 people dead after shooting at HQ of satirical weekly")
    assert p.hashtags == ("charliehebdo",)


def test_v1_thread_structure_file_carries_no_posts(fixtures_dir: Path) -> None:
    assert events(fixtures_dir / THREAD / "structure.json") == []


def test_v1_stream_delete_notice() -> None:
    status = {"id": 1, "id_str": "1", "user_id": 2, "user_id_str": "2"}
    notice = {"delete": {"status": status, "timestamp_ms": "1420628800000"}}
    fmt = TwitterV1()
    assert fmt.sniff(notice)
    assert fmt.parse(notice) == [Delete(source="x", id="1", at=utc(2015, 1, 7, 11, 6, 40))]
    assert fmt.parse({"limit": {"track": 5}}) == []


@pytest.mark.parametrize(
    ("raw", "flat", "count"),
    [
        ("rumoureval2017/raw_tweets_v1.1.jsonl.gz", "rumoureval2017/posts.jsonl", 4519),
        ("pheme9/raw_source_tweets_v1.1.jsonl.gz", "pheme9/source_tweets.jsonl", 4784),
    ],
)
def test_v1_verbatim_archives_agree_with_the_flattened_files(
    real_data: Path, raw: str, flat: str, count: int
) -> None:
    with gzip.open(real_data / raw, "rb") as fh:
        verbatim = {
            e.id: e
            for item in read(cast(BinaryIO, fh), fmt="twitter_v1")
            for e in _events_of(item)
            if isinstance(e, Post)
        }
    flattened = posts(real_data / flat)
    assert len(verbatim) == len(flattened) == count
    for post_id, p in flattened.items():
        v = verbatim[post_id]
        assert (v.created_at, v.author.handle, v.reply_to) == (
            p.created_at,
            p.author.handle,
            p.reply_to,
        )
        assert v.metrics.likes == p.metrics.likes


def _events_of(item: Parsed | Problem) -> list[Event]:
    assert isinstance(item, Parsed), item
    return item.events


# -- Bluesky Jetstream ------------------------------------------------------------------------

JETSTREAM = "bluesky_jetstream/expected_v1.jsonl"


def test_jetstream_totals(fixtures_dir: Path) -> None:
    kinds = Counter(type(e).__name__ for e in events(fixtures_dir / JETSTREAM))
    assert kinds == {"MetricsUpdate": 120, "Post": 17, "Delete": 1}


def test_jetstream_post_with_link_facet_and_external_embed(fixtures_dir: Path) -> None:
    [p] = Jetstream().parse(line(fixtures_dir / JETSTREAM, 2))
    assert isinstance(p, Post)
    assert p.source == "bluesky"
    assert p.id == "at://did:plc:dclwtltrt2ggsryagfzk7dp4/app.bsky.feed.post/3mptbyoeyc22k"
    assert p.url == "https://bsky.app/profile/did:plc:dclwtltrt2ggsryagfzk7dp4/post/3mptbyoeyc22k"
    assert p.author.id == p.author.handle == "did:plc:dclwtltrt2ggsryagfzk7dp4"
    assert p.text == "https://www.youtube.com/watch?v=V5lDo-jw8mA"
    assert p.urls == ("https://www.youtube.com/watch?v=V5lDo-jw8mA",)
    assert p.created_at == datetime(2026, 7, 4, 14, 38, 6, 240000, tzinfo=UTC)
    assert p.lang == "en"
    assert p.conversation_id == p.id


def test_jetstream_tags_links_and_first_lang(fixtures_dir: Path) -> None:
    [p] = Jetstream().parse(line(fixtures_dir / JETSTREAM, 148))
    assert isinstance(p, Post)
    assert p.hashtags == ("talesatwonderworld", "balanwonderworldoc")
    url = "https://www.tumblr.com/tempo-tales/765681292369166336/behind-them-timmi-and-wankyu-follow-silently-but?source=share"
    assert p.urls == (url,)
    assert f"\n\n{url}\n\n#talesatwonderworld" in p.text
    assert p.lang == "es"
    assert p.media_alt == ()


def test_jetstream_reply(fixtures_dir: Path) -> None:
    [p] = Jetstream().parse(line(fixtures_dir / JETSTREAM, 26))
    assert isinstance(p, Post)
    parent = "at://did:plc:i5y2f3gtpjxs3qg6fwgb6jb4/app.bsky.feed.post/3mpt7u2vlgs2c"
    assert p.reply_to == parent
    assert p.conversation_id == parent
    assert p.text == "이쁘시네용~~~"


def test_jetstream_image_alt_and_quote_embed(fixtures_dir: Path) -> None:
    raw = line(fixtures_dir / JETSTREAM, 144)
    images = raw["commit"]["record"]["embed"]
    images["images"][0]["alt"] = "Toph in the cartoon"
    quoted = "at://did:plc:4smmjsqf6l5jkzczvw6vsrqc/app.bsky.feed.post/3mpt73z3ejc2p"
    raw["commit"]["record"]["embed"] = {
        "$type": "app.bsky.embed.recordWithMedia",
        "record": {"$type": "app.bsky.embed.record", "record": {"uri": quoted, "cid": "x"}},
        "media": images,
    }
    [p] = Jetstream().parse(raw)
    assert isinstance(p, Post)
    assert p.media_alt == ("Toph in the cartoon",)
    assert p.quote_of == quoted


def test_jetstream_like_and_repost_are_metric_increments(fixtures_dir: Path) -> None:
    assert Jetstream().parse(line(fixtures_dir / JETSTREAM, 1)) == [
        MetricsUpdate(
            source="bluesky",
            id="at://did:plc:r2zybk6op3ymzpz6jhqpkoy5/app.bsky.feed.post/3mpsjbtci2c2o",
            likes=1,
            delta=True,
        )
    ]
    [repost] = Jetstream().parse(line(fixtures_dir / JETSTREAM, 18))
    assert isinstance(repost, MetricsUpdate)
    assert (repost.reposts, repost.likes, repost.delta) == (1, 0, True)
    assert repost.id == "at://did:plc:lthsfxxeghkgg44eummxtvbe/app.bsky.feed.post/3mpt6c57uy22u"


def test_jetstream_post_delete(fixtures_dir: Path) -> None:
    assert Jetstream().parse(line(fixtures_dir / JETSTREAM, 145)) == [
        Delete(
            source="bluesky",
            id="at://did:plc:4smmjsqf6l5jkzczvw6vsrqc/app.bsky.feed.post/3mpt73z3ejc2p",
            at=datetime(2026, 7, 4, 14, 38, 8, 377628, tzinfo=UTC),
        )
    ]


def test_jetstream_identity_account_and_other_collections(fixtures_dir: Path) -> None:
    fmt = Jetstream()
    identity = line(fixtures_dir / JETSTREAM, 151)
    assert fmt.parse(identity) == []  # this one names no handle
    identity["identity"]["handle"] = "example.bsky.social"
    assert fmt.parse(identity) == [
        Identity(
            source="bluesky",
            author_id="did:plc:hqvhxrowqbemo5e4wjnj6zao",
            handle="example.bsky.social",
        )
    ]
    assert fmt.parse(line(fixtures_dir / JETSTREAM, 152)) == []  # account
    for number, raw in enumerate(fixtures_dir.joinpath(JETSTREAM).read_bytes().splitlines(), 1):
        obj = orjson.loads(raw)
        collection = obj.get("commit", {}).get("collection", "")
        if collection.startswith(("app.bsky.graph.", "app.bsky.actor.", "fm.teal.")):
            assert fmt.parse(obj) == [], number


# -- Mastodon ---------------------------------------------------------------------------------


def test_mastodon_status_html_cw_tags_mentions_media(fixtures_dir: Path) -> None:
    [p] = events(fixtures_dir / "mastodon/test_entity_status__0.json")
    assert isinstance(p, Post)
    assert p.source == "mastodon"
    assert p.id == "110446223051565765"
    assert p.url == "https://icosahedron.website/@halcy/110446222386355655"
    assert p.text == (
        "test post for mastodon.py stuff\n\n"
        "@halcy you're a doo-doo head\n\n"
        "edit: editing this to have the maximum amount of fields filled :trans_heart: "
        "#ThisIsAHashtag"
    )
    assert p.hashtags == ("thisisahashtag",)
    assert p.mentions == ("halcy@icosahedron.website",)
    assert p.media_alt == ("a furry cube breakdancing",)
    assert p.author.handle == "halcy@icosahedron.website"
    assert p.author.id == "23972"
    assert p.author.followers == 3553
    assert p.lang == "de"
    assert p.metrics.likes == 1
    assert p.created_at == utc(2023, 5, 28, 12, 6, 50)
    assert p.edited_at == utc(2023, 5, 28, 12, 9, 44)
    assert p.urls == ()


def test_mastodon_quote_reply_and_shortened_links(fixtures_dir: Path) -> None:
    [p] = events(fixtures_dir / "mastodon/test_entity_quote__0.json")
    assert isinstance(p, Post)
    assert p.quote_of == "115044070560414080"
    assert p.reply_to == "115044053131672379"
    assert "RE:" not in p.text
    assert p.text == (
        "actual reply that quotes a post that quotes a post "
        "https://bsky.app/profile/h4lcy.bsky.social/post/3lwlumdwf522i"
    )


def test_mastodon_poll_card_and_hidden_link_spans(fixtures_dir: Path) -> None:
    [poll] = events(fixtures_dir / "mastodon/test_entity_poll__0.json")
    assert isinstance(poll, Post)
    assert poll.text == "secret test poll :hecker:\n\nreal\nfr fr\nso true\n:hecker:"
    assert poll.metrics == Metrics(likes=0, reposts=1, replies=2, quotes=0)
    [card] = events(fixtures_dir / "mastodon/test_entity_previewcard__2.json")
    assert isinstance(card, Post)
    link = "https://soundcloud.com/wakarangirl/popstars-dj-wakaran-girl-khard-bass-flex-1"
    assert card.text == f"{link} link to soundcloud that should generate a card"
    assert card.urls == (link,)


def test_mastodon_timeline_entities_and_local_handles(fixtures_dir: Path) -> None:
    got = posts(fixtures_dir / "mastodon/test_public_tl__2.json")
    assert len(got) == 8
    assert got["117020592137523525"].text == "you can't say that on television"
    jeep = got["117020588169351887"]
    assert jeep.author.handle == "admin@localhost:3000"
    assert jeep.mentions == ("mastodonpy_test@localhost:3000",)
    [tagged] = events(fixtures_dir / "mastodon/test_hashtag_tl__2.json")
    assert isinstance(tagged, Post)
    assert tagged.hashtags == ("hoot",)
    assert tagged.text == "#hoot (hashtag toot)"


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("test_entity_statusedit__0.json", 0),
        ("test_entity_tag__2.json", 0),
        ("test_entity_trendinglinkhistory__0.json", 0),
        ("test_status_context__1.json", 0),
        ("test_entity_searchv2__2.json", 2),
        ("test_entity_previewcardauthor__2.json", 1),
        ("test_entity_status__1.json", 1),
    ],
)
def test_mastodon_other_entities(fixtures_dir: Path, name: str, count: int) -> None:
    assert len(events(fixtures_dir / "mastodon" / name)) == count


def test_mastodon_reblog_is_the_boosters_post(fixtures_dir: Path) -> None:
    timeline = body(fixtures_dir / "mastodon/test_public_tl__2.json")
    boost = {**timeline[0], "content": "", "reblog": timeline[3]}
    [p] = Mastodon().parse(boost)
    assert isinstance(p, Post)
    assert p.id == timeline[0]["id"]
    assert p.repost_of == timeline[3]["id"]
    assert p.text == "on the internet, nobody knows you're a plane"
    assert p.author.handle == "mastodonpy_test_2@localhost:3000"


def test_mastodon_streaming_frames_and_sse(fixtures_dir: Path) -> None:
    status = body(fixtures_dir / "mastodon/test_entity_status__1.json")
    as_json = orjson.dumps(status).decode()
    fmt = Mastodon()
    frame = {"stream": ["public"], "event": "update", "payload": as_json}
    assert fmt.sniff(frame)
    [p] = fmt.parse(frame)
    assert isinstance(p, Post) and p.id == "110446183735368325"
    assert fmt.parse({"event": "delete", "payload": "110446183735368325"}) == [
        Delete(source="mastodon", id="110446183735368325")
    ]
    assert fmt.parse({"event": "notification", "payload": "{}"}) == []
    assert parse_stream_event("update", as_json) == [p]
    assert parse_stream_event("delete", "110446183735368325\n") == [
        Delete(source="mastodon", id="110446183735368325")
    ]
    unedited = orjson.dumps({**status, "edited_at": None}).decode()
    [edit] = parse_stream_event("status.update", unedited)
    assert isinstance(edit, Post) and edit.edited_at == edit.created_at
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_stream_event("update", as_json[:50])


def test_html_to_text() -> None:
    text, links = html_to_text(
        '<p>one<br>two &amp; <a href="https://e.org/x">e.org/x</a></p><p>three</p>'
        '<p><a href="https://m.example/tags/t" class="mention hashtag">#<span>t</span></a></p>'
    )
    assert text == "one\ntwo & e.org/x\n\nthree\n\n#t"
    assert links == ["https://e.org/x"]
    assert html_to_text("plain &lt;3") == ("plain <3", [])


# -- canonical --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "count"),
    [("rumoureval2017/posts.jsonl", 4519), ("pheme9/source_tweets.jsonl", 4784)],
)
def test_canonical_research_corpora_ingest_every_line(
    real_data: Path, path: str, count: int
) -> None:
    items = list(read(real_data / path))
    assert len(items) == count
    assert all(isinstance(i, Parsed) and len(i.events) == 1 for i in items)
    got = [e for i in items for e in _events_of(i) if isinstance(e, Post)]
    assert len(got) == count
    assert all(p.source == "x" and p.author.handle for p in got)
    assert len({p.id for p in got}) == count


def test_canonical_rumoureval_reply(real_data: Path) -> None:
    p = posts(real_data / "rumoureval2017/posts.jsonl")["499435529130504192"]
    assert p.author.handle == "CaccioppoliMike"
    assert p.author.id == "902528816"
    assert p.author.name == "Mike Caccioppoli"
    assert p.author.followers == 2111
    assert p.reply_to == "499368931367608320"
    assert p.conversation_id == "499368931367608320"
    assert p.urls == ("http://wp.me/p3M9Ke-OT",)
    assert p.hashtags == ("ferguson", "michaelbrown", "policebrutality")
    assert p.mentions == ("clydetheslyde",)
    assert p.metrics == Metrics(likes=1, reposts=2)
    assert p.created_at == utc(2014, 8, 13, 6, 1, 23)
    assert p.url == "https://x.com/CaccioppoliMike/status/499435529130504192"


def test_canonical_pheme_extracts_from_text(real_data: Path) -> None:
    p = posts(real_data / "pheme9/source_tweets.jsonl")["498248415223246848"]
    assert p.author.verified
    assert p.hashtags == ("ferguson",)
    assert p.urls == ("http://t.co/YlxEDKoebB",)
    assert p.metrics.reposts == 410
    assert p.reply_to is None


def test_canonical_optional_fields_and_author_forms() -> None:
    fmt = Canonical()
    [p] = fmt.parse(
        {
            "id": "at://did:plc:abc/app.bsky.feed.post/3k",
            "text": "hello #World @Someone https://example.org/a.",
            "created_at": "Wed Jan 07 11:06:08 +0100 2015",
            "source": "bluesky",
            "author": {"id": "did:plc:abc", "screen_name": "abc.bsky.social", "followers_count": 3},
            "metrics": {"like_count": 4, "reposts": 1, "views": 9},
        }
    )
    assert isinstance(p, Post)
    assert p.created_at == utc(2015, 1, 7, 10, 6, 8)
    assert p.url == "https://bsky.app/profile/did:plc:abc/post/3k"
    assert p.author.handle == "abc.bsky.social"
    assert p.author.followers == 3
    assert p.hashtags == ("world",)
    assert p.mentions == ("someone",)
    assert p.urls == ("https://example.org/a",)
    assert p.metrics == Metrics(likes=4, reposts=1, views=9)
    [q] = fmt.parse({"id": 7, "text": "x", "created_at": "2026-01-01", "author": "@Handle"})
    assert isinstance(q, Post)
    assert (q.id, q.author.handle, q.url) == ("7", "Handle", "https://x.com/Handle/status/7")
    assert q.created_at == utc(2026, 1, 1)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"id": "1", "text": None, "created_at": "2026-01-01"}, "text must be a string"),
        ({"id": "1", "text": "t", "created_at": "yesterday"}, "not a recognised time"),
        ({"id": "1", "text": "t", "created_at": "2026-13-01"}, "not a valid ISO 8601"),
        ({"id": "1", "text": "t", "created_at": "2026-01-01", "source": "<a>web</a>"}, "source"),
        ({"id": None, "text": "t", "created_at": "2026-01-01"}, "missing id"),
    ],
)
def test_canonical_rejects_malformed_posts_with_a_reason(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        Canonical().parse(obj)


def test_canonical_keeps_only_web_links() -> None:
    from firesift.formats.canonical import Canonical

    [post] = Canonical().parse(
        {
            "id": "1",
            "text": "click",
            "created_at": "2015-01-07T11:06:08Z",
            "author": "mallory",
            "url": "javascript:alert(1)",
            "urls": ["javascript:alert(2)", "https://example.org/a", "data:text/html,x"],
        }
    )
    assert post.url == "https://x.com/mallory/status/1"
    assert post.urls == ("https://example.org/a",)
