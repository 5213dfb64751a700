"""The tantivy index, ranking and text normalisation, on hand-built posts and real RumourEval
posts."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firesift.errors import ConfigError, IndexError_
from firesift.index import (
    BACKENDS,
    SIDECAR,
    Hit,
    TantivyIndex,
    get_backend,
    post_fields,
)
from firesift.post import Author, Metrics, Post, to_ms
from firesift.query import parse
from firesift.rank import RankParams, prior_score, rank
from firesift.textnorm import dup_fingerprint, dup_text, url_domains

T0 = datetime(2024, 3, 24, 12, 0, tzinfo=UTC)
T0_MS = to_ms(T0)
HOUR = 3_600_000


def post(
    pid: str,
    text: str,
    *,
    minutes: float = 0,
    handle: str = "alice",
    author_id: str | None = None,
    source: str = "x",
    **kw: object,
) -> Post:
    return Post(
        source=source,
        id=pid,
        text=text,
        created_at=T0 + timedelta(minutes=minutes),
        author=Author(id=author_id or f"id-{handle}", handle=handle),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TantivyIndex]:
    ix = TantivyIndex.open_or_create(tmp_path / "index")
    yield ix
    ix.close()


def load(ix: TantivyIndex, *posts: Post, seq: int = 1) -> None:
    ix.add(posts)
    ix.commit(seq)
    ix.refresh()


def keys(ix: TantivyIndex, text: str, **kw: object) -> set[str]:
    return {h.key for h in ix.search(parse(text), limit=1000, **kw)}  # type: ignore[arg-type]


# --- writing ---------------------------------------------------------------------------------


def test_new_index_is_empty_at_seq_zero(index: TantivyIndex) -> None:
    assert (index.num_docs, index.applied_seq, index.needs_rebuild) == (0, 0, False)


def test_add_then_search_after_commit_and_refresh(index: TantivyIndex) -> None:
    index.add([post("1", "Fire downtown")])
    index.commit(1)
    index.refresh()
    assert keys(index, "fire") == {"x:1"}
    assert index.num_docs == 1


def test_uncommitted_posts_are_invisible(index: TantivyIndex) -> None:
    load(index, post("1", "fire"))
    index.add([post("2", "fire again")])
    index.refresh()
    assert keys(index, "fire") == {"x:1"}


def test_upsert_replaces_the_earlier_version(index: TantivyIndex) -> None:
    load(index, post("1", "first draft about floods"))
    load(index, post("1", "edited: about wildfires", metrics=Metrics(likes=7)), seq=2)
    assert index.num_docs == 1
    assert keys(index, "floods") == set()
    [hit] = index.search(parse("wildfires"))
    assert (hit.key, hit.likes) == ("x:1", 7)


def test_upsert_within_one_batch_keeps_the_last(index: TantivyIndex) -> None:
    load(index, post("1", "alpha"), post("1", "beta"))
    assert (index.num_docs, keys(index, "alpha"), keys(index, "beta")) == (1, set(), {"x:1"})


def test_delete_removes_and_ignores_unknown_keys(index: TantivyIndex) -> None:
    load(index, post("1", "fire"), post("2", "fire"), post("1", "fire", source="bsky"))
    index.delete(["x:1", "x:404"])
    index.commit(2)
    index.refresh()
    assert keys(index, "fire") == {"x:2", "bsky:1"}
    assert index.applied_seq == 2


def test_large_fingerprints_and_counts_survive(index: TantivyIndex) -> None:
    p = post("1", "hello", metrics=Metrics(likes=2**40, reposts=3, replies=-1))
    load(index, p)
    [hit] = index.search(parse("hello"))
    assert hit.dup == dup_fingerprint("hello") and hit.dup > 0
    assert (hit.likes, hit.reposts, hit.created_ms) == (2**40, 3, T0_MS)


def test_dup_fingerprint_above_2_63_round_trips(index: TantivyIndex) -> None:
    text = next(f"text {i}" for i in range(1000) if dup_fingerprint(f"text {i}") >= 2**63)
    load(index, post("1", text))
    assert index.search(parse("text"))[0].dup == dup_fingerprint(text)


# --- reopening, sidecar, corruption ------------------------------------------------------------


def test_reopen_keeps_docs_and_applied_seq(tmp_path: Path) -> None:
    path = tmp_path / "index"
    ix = TantivyIndex.open_or_create(path)
    load(ix, post("1", "fire"), seq=41)
    ix.close()
    again = TantivyIndex.open_or_create(path)
    assert (again.applied_seq, again.num_docs, again.needs_rebuild) == (41, 1, False)
    assert keys(again, "fire") == {"x:1"}
    again.close()


def test_close_discards_uncommitted_changes(tmp_path: Path) -> None:
    path = tmp_path / "index"
    ix = TantivyIndex(path)
    load(ix, post("1", "fire"), seq=3)
    ix.add([post("2", "fire")])
    ix.close()
    again = TantivyIndex(path)
    assert (again.num_docs, again.applied_seq) == (1, 3)
    again.close()


def test_sidecar_is_written_atomically_as_json(index: TantivyIndex) -> None:
    load(index, post("1", "fire"), seq=9)
    data = json.loads((index.path / SIDECAR).read_text())
    assert data["applied_seq"] == 9
    assert not list(index.path.glob("*.tmp"))


def test_a_reader_sees_another_writers_commits_after_refresh(tmp_path: Path) -> None:
    writer = TantivyIndex(tmp_path / "index")
    reader = TantivyIndex(tmp_path / "index")
    load(writer, post("1", "fire"))
    assert reader.num_docs == 0
    reader.refresh()
    assert keys(reader, "fire") == {"x:1"}
    writer.close()
    reader.close()


def test_second_writer_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    first = TantivyIndex(tmp_path / "index")
    first.add([post("1", "fire")])
    second = TantivyIndex(tmp_path / "index")
    with pytest.raises(IndexError_, match="another firesift process"):
        second.add([post("2", "fire")])
    first.close()
    second.close()


def _corrupt_meta(path: Path) -> None:
    (path / "meta.json").write_text("{not json")


def _corrupt_segments(path: Path) -> None:
    segment_files = [f for f in path.iterdir() if f.suffix in (".idx", ".term", ".fast")]
    assert segment_files
    for f in segment_files:
        f.write_bytes(b"\x00garbage" * 16)


def _drop_sidecar(path: Path) -> None:
    (path / SIDECAR).unlink()


def _old_schema(path: Path) -> None:
    data = json.loads((path / SIDECAR).read_text())
    (path / SIDECAR).write_text(json.dumps({**data, "schema": -1}))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt_meta, "cannot open"),
        (_corrupt_segments, "cannot open"),
        (_drop_sidecar, "missing"),
        (_old_schema, "schema version"),
    ],
)
def test_unusable_index_is_detected_and_replaced(
    tmp_path: Path, damage: object, reason: str
) -> None:
    path = tmp_path / "index"
    ix = TantivyIndex(path)
    load(ix, post("1", "fire"), post("2", "smoke"), seq=12)
    ix.close()
    damage(path)  # type: ignore[operator]
    with pytest.raises(IndexError_, match=reason):
        TantivyIndex(path)
    fresh = TantivyIndex.open_or_create(path)
    assert fresh.needs_rebuild
    assert fresh.rebuild_reason is not None and reason in fresh.rebuild_reason
    assert (fresh.applied_seq, fresh.num_docs) == (0, 0)
    load(fresh, post("3", "fire"), seq=1)
    assert keys(fresh, "fire") == {"x:3"}
    fresh.close()
    assert not TantivyIndex.open_or_create(path).needs_rebuild


def test_damage_found_only_while_searching_is_an_index_error(tmp_path: Path) -> None:
    path = tmp_path / "index"
    ix = TantivyIndex(path)
    load(ix, *(post(str(i), f"hello {i}") for i in range(50)))
    ix.close()
    for store in path.glob("*.store"):
        data = bytearray(store.read_bytes())
        data[len(data) // 2] ^= 0xFF
        store.write_bytes(bytes(data))
    damaged = TantivyIndex(path)
    with pytest.raises(IndexError_, match="may be damaged"):
        damaged.search(parse("hello"), limit=100)
    damaged.close()


def test_refuses_to_replace_a_directory_that_is_not_an_index(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.mkdir()
    (path / "meta.json").write_text("{}")
    (path / "thesis.tex").write_text("do not delete")
    with pytest.raises(IndexError_, match=r"not part of a search index \(thesis.tex\)"):
        TantivyIndex.open_or_create(path)
    assert (path / "thesis.tex").exists()


def test_registry_names_the_valid_backends() -> None:
    assert get_backend("tantivy") is TantivyIndex
    assert BACKENDS["tantivy"].name == "tantivy"
    with pytest.raises(ConfigError, match="available: tantivy"):
        get_backend("elastic")


# --- matching ----------------------------------------------------------------------------------


@pytest.fixture
def corpus(index: TantivyIndex) -> TantivyIndex:
    load(
        index,
        post(
            "1",
            "Protesters gather in #Ferguson tonight https://www.bbc.co.uk/news/1",
            handle="Alice",
            lang="en",
            metrics=Metrics(likes=120, reposts=30),
            urls=("https://www.bbc.co.uk/news/1",),
        ),
        post(
            "2",
            "RT @alice: Protesters gather in #Ferguson tonight",
            minutes=10,
            handle="bob",
            lang="en",
            repost_of="1",
        ),
        post(
            "3",
            "@Alice le café est fermé",
            minutes=20,
            handle="carol",
            lang="fr",
            reply_to="1",
            metrics=Metrics(likes=3),
        ),
        post(
            "4",
            "Police confirm shots fired near the station",
            minutes=30,
            handle="dave",
            author_id="12345",
            lang="en-GB",
            hashtags=("Breaking",),
            mentions=("policeuk",),
            metrics=Metrics(likes=50, replies=9),
        ),
        post(
            "5",
            "No shots were fired, says police spokesman. Photo attached",
            minutes=40,
            handle="erin",
            media_alt=("Crowd outside the station at night",),
            reply_to="4",
        ),
    )
    return index


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("protest", {"x:1", "x:2"}),
        ("PROTESTERS", {"x:1", "x:2"}),
        ("cafe", {"x:3"}),
        ("café fermé", {"x:3"}),
        ('"shots fired"', {"x:4"}),
        ("shots fired", {"x:4", "x:5"}),
        ('"fired shots"', set()),
        ("shots -confirm", {"x:5"}),
        ("shots -(police confirm)", {"x:5"}),
        ("confirm OR spokesman", {"x:4", "x:5"}),
        ("police confirm OR spokesman", {"x:4", "x:5"}),
        ("(police station) OR fermé", {"x:3", "x:4", "x:5"}),
        ("(police confirm) OR fermé", {"x:3", "x:4"}),
        ("crowd", {"x:5"}),
        ("#ferguson", {"x:1", "x:2"}),
        ("#FERGUSON -filter:retweets", {"x:1"}),
        ("#breaking", {"x:4"}),
        ("@alice", {"x:2", "x:3"}),
        ("@policeuk", {"x:4"}),
        ("from:alice", {"x:1"}),
        ("from:ALICE OR from:bob", {"x:1", "x:2"}),
        ("from:12345", {"x:4"}),
        ("-from:alice #ferguson", {"x:2"}),
        ("to:alice", {"x:3"}),
        ("lang:en", {"x:1", "x:2", "x:4"}),
        ("lang:en-gb", {"x:4"}),
        ("lang:fr", {"x:3"}),
        ("url:bbc.co.uk", {"x:1"}),
        ("url:bbc", {"x:1"}),
        ("url:cnn.com", set()),
        ("min_faves:50", {"x:1", "x:4"}),
        ("min_faves:51", {"x:1"}),
        ("min_retweets:30", {"x:1"}),
        ("min_replies:1", {"x:4"}),
        ("filter:links", {"x:1"}),
        ("filter:media", {"x:5"}),
        ("filter:replies", {"x:3", "x:5"}),
        ("shots -filter:replies", {"x:4"}),
        ("filter:retweets", {"x:2"}),
        ("protesters -filter:retweets", {"x:1"}),
        ("covid-19", set()),
        ("since:2024-03-24T12:20:00Z", {"x:3", "x:4", "x:5"}),
        ("until:2024-03-24T12:20:00Z", {"x:1", "x:2"}),
        ("since:2024-03-24T12:10:00Z until:2024-03-24T12:30:00Z", {"x:2", "x:3"}),
        ("until:2024-03-24", set()),
        ("since:2024-03-24 until:2024-03-25", {"x:1", "x:2", "x:3", "x:4", "x:5"}),
        ("-filter:replies since:2024-03-24", {"x:1", "x:2", "x:4"}),
    ],
)
def test_query_matches(corpus: TantivyIndex, query: str, expected: set[str]) -> None:
    assert keys(corpus, query) == expected


def test_as_of_excludes_later_posts(corpus: TantivyIndex) -> None:
    assert keys(corpus, "shots", as_of_ms=T0_MS + 35 * 60_000) == {"x:4"}
    assert keys(corpus, "shots", as_of_ms=T0_MS + 30 * 60_000) == {"x:4"}
    assert keys(corpus, "shots", as_of_ms=T0_MS + 30 * 60_000 - 1) == set()


def test_as_of_combines_with_until(corpus: TantivyIndex) -> None:
    q = "since:2024-03-24 until:2024-03-24T12:30:00Z"
    assert keys(corpus, q, as_of_ms=T0_MS + 15 * 60_000) == {"x:1", "x:2"}


def test_hits_carry_fast_fields_and_the_repost_original(corpus: TantivyIndex) -> None:
    hits = {h.key: h for h in corpus.search(parse("#ferguson"))}
    assert hits["x:2"].orig == "x:1"
    assert hits["x:1"].orig == "x:1"
    assert (hits["x:1"].likes, hits["x:1"].reposts, hits["x:1"].created_ms) == (120, 30, T0_MS)


def test_filters_do_not_add_to_bm25(corpus: TantivyIndex) -> None:
    [plain] = corpus.search(parse("spokesman"))
    [filtered] = corpus.search(parse("spokesman filter:replies lang:und OR filter:media"))
    assert filtered.score == pytest.approx(plain.score)
    assert all(h.score == 0.0 for h in corpus.search(parse("from:alice OR from:bob")))


def test_sort_recent_is_newest_first(corpus: TantivyIndex) -> None:
    hits = corpus.search(parse("since:2024-01-01"), sort="recent")
    assert [h.key for h in hits] == ["x:5", "x:4", "x:3", "x:2", "x:1"]
    assert [h.key for h in corpus.search(parse("shots"), sort="recent", limit=1)] == ["x:5"]


def test_limit_and_relevance_order(corpus: TantivyIndex) -> None:
    hits = corpus.search(parse("police OR station OR shots"), limit=2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score


def test_empty_time_window_returns_nothing(corpus: TantivyIndex) -> None:
    assert corpus.search(parse("shots"), as_of_ms=T0_MS - 1) == []


# --- as_of as a property ------------------------------------------------------------------------


def test_as_of_never_leaks_a_later_post(index: TantivyIndex) -> None:
    rng = random.Random(11)
    words = ["storm", "flood", "wind", "rain"]
    posts = [
        post(str(i), f"{rng.choice(words)} {rng.choice(words)} update", minutes=rng.uniform(0, 600))
        for i in range(400)
    ]
    load(index, *posts)
    created = {p.key: to_ms(p.created_at) for p in posts}
    for _ in range(150):
        as_of = T0_MS + rng.randint(-10, 610) * 60_000 + rng.randint(-999, 999)
        word = rng.choice(words)
        sort = rng.choice(["relevance", "recent"])
        hits = index.search(parse(word), as_of_ms=as_of, limit=1000, sort=sort)  # type: ignore[arg-type]
        assert all(h.created_ms <= as_of for h in hits)
        expected = {p.key for p in posts if word in p.text.split() and created[p.key] <= as_of}
        assert {h.key for h in hits} == expected
        ranked = index.ranked_search(parse(word), as_of_ms=as_of, candidates=50)
        assert all(h.created_ms <= as_of for h in ranked.hits)


# --- ranking and collapsing ----------------------------------------------------------------------


def test_ranked_search_collapses_reposts_onto_the_original(corpus: TantivyIndex) -> None:
    ranked = corpus.ranked_search(parse("#ferguson"), as_of_ms=T0_MS + HOUR)
    assert [h.key for h in ranked.hits] == ["x:1"]
    assert ranked.hits[0].collapsed_keys == ("x:2",)
    assert (ranked.collapsed, ranked.candidates) == (1, 2)


def test_repost_without_its_original_stays_visible(corpus: TantivyIndex) -> None:
    ranked = corpus.ranked_search(parse("from:bob"), as_of_ms=T0_MS + HOUR)
    assert ranked.keys == ["x:2"]
    assert ranked.hits[0].orig == "x:1"


def test_near_duplicates_collapse_onto_the_earliest(index: TantivyIndex) -> None:
    load(
        index,
        post("1", "Bridge closed on I-95, avoid the area! https://t.co/aaa", minutes=0),
        post("2", "@newsdesk bridge CLOSED on I-95 avoid the area https://t.co/bbb", minutes=5),
        post(
            "3",
            "RT @x: Bridge closed on I-95 - avoid the area",
            minutes=9,
            metrics=Metrics(likes=900),
        ),
        post("4", "Bridge closed on I-95, traffic is backed up for miles", minutes=7),
    )
    ranked = index.ranked_search(parse("bridge closed"), as_of_ms=T0_MS + HOUR)
    assert ranked.keys[0] == "x:1"
    assert set(ranked.hits[0].collapsed_keys) == {"x:2", "x:3"}
    assert set(ranked.keys) == {"x:1", "x:4"}
    assert ranked.collapsed == 2


def test_jaccard_collapses_copies_that_differ_by_a_word(index: TantivyIndex) -> None:
    texts = {
        "x:1": "huge explosion reported at the chemical plant in the harbour district tonight",
        "x:2": "huge explosion reported at the chemical plant in the harbour district this evening",
        "x:3": "explosion at the harbour? no, it was fireworks",
    }
    load(index, *(post(k[2:], t, minutes=int(k[2:])) for k, t in texts.items()))
    plain = index.ranked_search(parse("explosion"), as_of_ms=T0_MS + HOUR)
    assert len(plain.hits) == 3
    ranked = index.ranked_search(
        parse("explosion"),
        as_of_ms=T0_MS + HOUR,
        texts=lambda ks: {k: texts[k] for k in ks},
        params=RankParams(jaccard_threshold=0.7),
    )
    assert sorted(ranked.keys) == ["x:1", "x:3"]
    assert ranked.collapsed == 1


def test_recent_sort_in_ranked_search_orders_groups_by_newest_member(corpus: TantivyIndex) -> None:
    ranked = corpus.ranked_search(parse("since:2024-01-01"), as_of_ms=T0_MS + HOUR, sort="recent")
    assert ranked.keys == ["x:5", "x:4", "x:3", "x:1"]


def _hit(key: str, *, score: float = 1.0, minutes: float = 0, likes: int = 0) -> Hit:
    return Hit(key, score, T0_MS + int(minutes * 60_000), likes, 0, 0, key)


def test_priors_prefer_engagement_and_recency() -> None:
    as_of = T0_MS + 24 * HOUR
    fresh = prior_score(_hit("a", minutes=24 * 60), as_of_ms=as_of)
    old = prior_score(_hit("b"), as_of_ms=as_of)
    liked = prior_score(_hit("c", likes=1000), as_of_ms=as_of)
    assert fresh > old and liked > old
    assert old >= RankParams().recency_floor


def test_filter_only_hits_are_ordered_by_priors() -> None:
    hits = [_hit("a", score=0.0), _hit("b", score=0.0, likes=10), _hit("c", score=0.0, minutes=60)]
    ranked = rank(hits, as_of_ms=T0_MS + HOUR, limit=3)
    assert ranked.keys[-1] == "a"
    assert all(h.score > 0 for h in ranked.hits)


def test_rank_limit_and_future_hits_count_as_age_zero() -> None:
    hits = [_hit(str(i), score=float(i)) for i in range(10)]
    ranked = rank(hits, as_of_ms=T0_MS - HOUR, limit=3)
    assert ranked.keys == ["9", "8", "7"]
    assert ranked.candidates == 10


# --- text normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "RT @someone: Bridge closed on I-95, avoid the area!",
        "bridge closed on i 95 avoid the area https://t.co/xyz",
        "@a @b Bridge   closed on I-95... avoid the area",
        "Bridge closed on #I-95 avoid the area http://bit.ly/q",
    ],
)
def test_dup_fingerprint_ignores_decoration(variant: str) -> None:
    assert dup_fingerprint(variant) == dup_fingerprint("Bridge closed on I-95, avoid the area")


def test_dup_fingerprint_of_nothing_is_zero() -> None:
    assert dup_fingerprint("https://t.co/x @alice") == 0
    assert dup_text("RT @a: Café CRÈME!") == "café crème"


def test_url_domains_cover_parents_and_labels() -> None:
    assert url_domains("https://www.news.bbc.co.uk:443/x") == [
        "news.bbc.co.uk",
        "bbc.co.uk",
        "co.uk",
        "uk",
        "news",
        "bbc",
        "co",
    ]
    assert url_domains("not a url at all") == []


def test_post_fields_extract_from_text_when_the_source_lists_nothing() -> None:
    fields = post_fields(post("1", "@Bob see #Fire at https://www.Example.com/x", reply_to="9"))
    assert fields["hashtags"] == ["fire"]
    assert fields["mentions"] == ["bob"]
    assert "example.com" in fields["domains"]
    assert fields["to"] == ["bob"]
    assert sorted(fields["flags"]) == ["links", "replies"]
    assert "orig" not in fields


# --- real posts ----------------------------------------------------------------------------------


def _real_posts(real_data: Path, limit: int) -> list[Post]:
    out = []
    with open(real_data / "rumoureval2017" / "posts.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append(
                Post(
                    source="x",
                    id=r["id"],
                    text=r["text"],
                    created_at=datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")),
                    author=Author(id=r["author_id"], handle=r["author_screen_name"]),
                    lang=r["lang"],
                    reply_to=r["in_reply_to_status_id"],
                    metrics=Metrics(likes=r["favorite_count"], reposts=r["retweet_count"]),
                    hashtags=tuple(r["hashtags"]),
                    urls=tuple(r["urls"]),
                )
            )
            if len(out) >= limit:
                break
    return out


def test_real_posts_hashtags_authors_and_time(index: TantivyIndex, real_data: Path) -> None:
    posts = _real_posts(real_data, 1500)
    load(index, *posts)
    assert index.num_docs == len({p.key for p in posts})
    tagged = {p.key for p in posts if "ferguson" in {t.lower() for t in p.hashtags}}
    assert tagged and tagged <= keys(index, "#ferguson")
    author = posts[0].author.handle
    assert keys(index, f"from:{author}") == {p.key for p in posts if p.author.handle == author}
    originals = {p.key for p in posts if p.reply_to is None}
    assert keys(index, "-filter:replies since:2000-01-01") == originals
    mid = sorted(to_ms(p.created_at) for p in posts)[len(posts) // 2]
    hits = index.search(parse("since:2000-01-01"), as_of_ms=mid, limit=5000, sort="recent")
    assert {h.key for h in hits} == {p.key for p in posts if to_ms(p.created_at) <= mid}
    assert [h.created_ms for h in hits] == sorted((h.created_ms for h in hits), reverse=True)


def test_doc_freqs_count_posts_per_word_as_analysed(index: TantivyIndex) -> None:
    load(
        index,
        post("1", "Shootings reported downtown"),
        post("2", "a shooting was seen"),
        post("3", "quiet day"),
    )
    freqs = index.doc_freqs(["shooting", "quiet", "absent"])
    assert freqs == {"shooting": 2, "quiet": 1, "absent": 0}
