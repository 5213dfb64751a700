"""The near-real-time search index: posts in, keys of matching posts out.

The index is derived data. The store holds every post's text and is the truth; the index holds
only what search needs to *find and order* posts, and can always be rebuilt by replaying the
store's change log from ``applied_seq``. Backends sit behind :class:`SearchIndex` and register by
name in :data:`BACKENDS` (``tantivy`` is the built-in), so a partitioned or remote engine can be
added without touching callers.

Tantivy schema (what is stored is only what a hit must carry back; the rest is indexed or fast):

=========  ============================  ==================================================
field      kind                          why
=========  ============================  ==================================================
key        raw term, stored              ``source:id``; upsert and delete by term
orig       raw term, stored (reposts)    the key a repost collapses onto; absent = own key
text       ``fs_text``, positions        words and phrases: lowercased, ASCII-folded, stemmed
handle     raw terms                     author handle and author id (``from:``)
to         raw terms                     handles a reply is addressed to (``to:``)
hashtags   raw terms                     ``#tag`` (listed by the source or found in text)
mentions   raw terms                     ``@handle`` (listed or found in text)
domains    raw terms                     ``url:``; host, parent domains and labels
lang       raw terms                     ``lang:``; the tag and its primary subtag
flags      raw terms                     ``filter:``; ``links`` ``media`` ``replies`` ``reposts``
created    i64 ms, indexed + fast        time window, ``as_of`` and "recent" order
likes ..   u64 fast (likes/reposts/      ``min_faves:`` etc. and engagement priors
           replies)
dup        u64 fast                      near-duplicate fingerprint (:mod:`firesift.textnorm`)
=========  ============================  ==================================================

One text field, stemmed. The stream is multilingual and recall matters more than spelling:
``fs_text`` is tantivy's simple tokenizer, long-token removal, lowercasing, ASCII folding and
the English Snowball stemmer, so "protest" finds "protesters" and "cafe" finds "café". English
stemming of other languages is applied to query and document alike, so it can merge forms but
never lose a match. A second, unstemmed field (exact-spelling boosts, exact quoted phrases) was
measured and rejected: it added ~60% indexing CPU per post and ~40% index bytes, which the
indexing target on two cores cannot afford; quoted phrases therefore match stemmed words in
order (as Elasticsearch's ``english`` analyser does). The analyser is registered on every open
and reused on the query side (:meth:`tantivy.TextAnalyzer.analyze`), so query words are always
tokenised exactly as documents were. Known limit: scripts without spaces (CJK) become long
single tokens; that needs an n-gram field.

Filters (fields, flags, counts, time) are wrapped in constant-score-zero queries so BM25 is the
text's relevance only; a query of filters alone scores 0 and is ordered by the priors in
:mod:`firesift.rank`. ``as_of`` and ``since:``/``until:`` become one range on ``created``
inside the tantivy query, so no later post can ever be returned.

``applied_seq`` (the last store change applied) lives in a sidecar ``firesift-index.json``
written by atomic rename *after* tantivy's commit: a crash in between leaves the sidecar behind
the index, and replaying a few changes again is harmless because every change is an upsert or
delete by key. The binding does not expose tantivy's commit payload, hence the sidecar.

Writing: each post becomes a dict (:func:`post_fields`), serialised by orjson and handed to
``IndexWriter.add_json``, which parses and types it in Rust against the schema. Measured per
post on the main thread: ``Document(**kwargs)`` 3.5 us and unsafe (it guesses numeric types:
a fingerprint above 2**63 became a float and panicked the writer), ``Document.from_dict`` 2.9 us,
``add_*`` calls 2.3 us, orjson 0.6 us. One indexing thread (:data:`WRITER_THREADS`): on two
cores the Python thread that builds documents needs the other one.

Near-real-time: readers use the ``Manual`` reload policy (tantivy's ``OnCommit`` watcher polls
``meta.json`` about every 500 ms); :meth:`TantivyIndex.refresh` reloads right after a commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
import tantivy

from firesift.errors import ConfigError, IndexError_
from firesift.post import Post, to_ms
from firesift.query import And, Field, Flag, MinCount, Node, Not, Or, Phrase, Query, Word
from firesift.rank import Ranked, RankParams, rank
from firesift.textnorm import (
    dup_fingerprint,
    extract_hashtags,
    extract_mentions,
    extract_urls,
    handle_key,
    lang_keys,
    leading_mentions,
    tag_key,
    url_domains,
)

__all__ = [
    "BACKENDS",
    "Hit",
    "SearchIndex",
    "Sort",
    "TantivyIndex",
    "get_backend",
    "register_backend",
]

Sort = Literal["relevance", "recent"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching post. ``score`` is BM25 of the text clauses (``0.0`` when sorted by
    ``recent`` or when only filters matched); ``orig`` is the key a repost collapses onto (the
    post's own key otherwise); ``dup`` its near-duplicate fingerprint (``0`` = none)."""

    key: str
    score: float
    created_ms: int
    likes: int
    reposts: int
    dup: int
    orig: str


class SearchIndex(ABC):
    """A full-text index of posts, kept in step with the store's change log."""

    name: ClassVar[str]
    needs_rebuild: bool = False
    """True when an existing index was unusable and replaced by an empty one: the caller must
    replay the store's whole change log (``applied_seq`` is 0)."""

    @abstractmethod
    def add(self, posts: Sequence[Post], *, new: bool = False) -> None:
        """Insert or replace (by key) these posts; searchable after :meth:`commit` and
        :meth:`refresh`. ``new``: the caller knows none of them is in the index (first versions
        from the store), so no older document is looked for."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> None:
        """Remove posts by ``source:id`` key (unknown keys are ignored)."""

    @abstractmethod
    def commit(self, seq: int) -> None:
        """Make pending changes durable and record ``seq`` as the last store change applied."""

    @property
    @abstractmethod
    def applied_seq(self) -> int:
        """The store change-log ``seq`` the last commit included (0 for a new index)."""

    @abstractmethod
    def refresh(self) -> None:
        """Make the last commit visible to searches."""

    @property
    @abstractmethod
    def num_docs(self) -> int:
        """How many posts the current searcher sees."""

    def doc_freqs(self, words: Sequence[str]) -> dict[str, int] | None:
        """How many indexed posts contain each word (analysed like post text; the most
        frequent token for a multi-token word), or None when the backend cannot tell."""
        return None

    @abstractmethod
    def search(
        self,
        q: Query,
        *,
        as_of_ms: int | None = None,
        limit: int = 20,
        sort: Sort = "relevance",
    ) -> list[Hit]:
        """Posts matching ``q`` created at or before ``as_of_ms``: the ``limit`` best by BM25
        (``sort="relevance"``) or the newest (``"recent"``)."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release writers and files; the index stays on disk."""

    def ranked_search(
        self,
        q: Query,
        *,
        as_of_ms: int,
        limit: int = 20,
        sort: Sort = "relevance",
        candidates: int = 200,
        texts: Callable[[Sequence[str]], dict[str, str]] | None = None,
        params: RankParams | None = None,
    ) -> Ranked:
        """What ``firesift search`` shows: ``candidates`` BM25 (or newest) hits re-scored with
        recency and engagement priors relative to ``as_of_ms``, reposts and near-duplicates
        collapsed, top ``limit``. ``texts(keys)`` (from the store) enables Jaccard
        near-duplicate detection among the top candidates."""
        hits = self.search(q, as_of_ms=as_of_ms, limit=candidates, sort=sort)
        return rank(
            hits,
            as_of_ms=as_of_ms,
            limit=limit,
            sort=sort,
            texts=texts([h.key for h in hits]) if texts is not None and hits else None,
            params=params or RankParams(),
        )

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BACKENDS: dict[str, type[SearchIndex]] = {}
"""Index backends by name; built-ins register here the same way a plugin would."""


def register_backend(name: str) -> Callable[[type[SearchIndex]], type[SearchIndex]]:
    """Class decorator: make an index backend available as ``name``."""

    def decorate(cls: type[SearchIndex]) -> type[SearchIndex]:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return decorate


def get_backend(name: str) -> type[SearchIndex]:
    """The backend class registered as ``name``; :class:`ConfigError` names the valid ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        valid = ", ".join(sorted(BACKENDS)) or "(none)"
        raise ConfigError(f"unknown index backend {name!r}; available: {valid}") from None


# --- tantivy ---------------------------------------------------------------------------------

SCHEMA_VERSION = 1
SIDECAR = "firesift-index.json"
WRITER_HEAP_BYTES = 128_000_000
WRITER_THREADS = 1
MAX_TOKEN_CHARS = 40

TEXT_ANALYZER = "fs_text"

_RAW_FIELDS = ("handle", "to", "hashtags", "mentions", "domains", "lang", "flags")
_METRIC_FIELDS = {"likes": "likes", "reposts": "reposts", "replies": "replies"}
_FIELD_OF = {
    "hashtag": "hashtags",
    "mention": "mentions",
    "from": "handle",
    "to": "to",
    "lang": "lang",
    "url": "domains",
}


def _text_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("key", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("orig", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("text", tokenizer_name=TEXT_ANALYZER, index_option="position")
    for name in _RAW_FIELDS:
        sb.add_text_field(name, tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("created", indexed=True, fast=True)
    for name in ("likes", "reposts", "replies", "dup"):
        sb.add_unsigned_field(name, fast=True)
    return sb.build()


def post_fields(post: Post) -> dict[str, Any]:
    """The index document for ``post`` as a field -> value(s) mapping (empty fields omitted)."""
    text = post.text
    author = post.author
    handle = handle_key(author.handle)
    author_id = author.id.lower()
    metrics = post.metrics
    fields: dict[str, Any] = {
        "key": f"{post.source}:{post.id}",
        "text": text if not post.media_alt else "\n".join((text, *post.media_alt)),
        "handle": [handle] if author_id == handle or not author_id else [handle, author_id],
        "created": to_ms(post.created_at),
        "likes": metrics.likes if metrics.likes > 0 else 0,
        "reposts": metrics.reposts if metrics.reposts > 0 else 0,
        "replies": metrics.replies if metrics.replies > 0 else 0,
        "dup": dup_fingerprint(text),
    }
    if post.hashtags or "#" in text:
        tags = {tag_key(t) for t in post.hashtags}
        tags.update(extract_hashtags(text))
        tags.discard("")
        if tags:
            fields["hashtags"] = list(tags)
    if post.mentions or "@" in text:
        mentions = {handle_key(m) for m in post.mentions}
        mentions.update(extract_mentions(text))
        mentions.discard("")
        if mentions:
            fields["mentions"] = list(mentions)
    urls = post.urls or (extract_urls(text) if "://" in text or "www." in text else ())
    flags = []
    if urls:
        domains: dict[str, None] = {}
        for url in urls:
            domains.update(dict.fromkeys(url_domains(url)))
        if domains:
            fields["domains"] = list(domains)
        flags.append("links")
    if post.media_alt:
        flags.append("media")
    if post.reply_to is not None:
        flags.append("replies")
        to = leading_mentions(text)
        if to:
            fields["to"] = to
    if post.repost_of is not None:
        flags.append("reposts")
        fields["orig"] = _orig_key(post)
    if flags:
        fields["flags"] = flags
    if post.lang:
        fields["lang"] = lang_keys(post.lang)
    return fields


def _orig_key(post: Post) -> str:
    ref = post.repost_of or ""
    return ref if ":" in ref else f"{post.source}:{ref}"


@register_backend("tantivy")
class TantivyIndex(SearchIndex):
    """The embedded tantivy index in directory ``path``.

    Opening never writes: the tantivy writer (which takes the directory's lock) is created on the
    first :meth:`add` / :meth:`delete`, so a read-only process (``firesift search``) can open the
    index the server is writing. Raises :class:`IndexError_` if an existing index cannot be
    opened; :meth:`open_or_create` replaces such an index with an empty one instead.
    """

    rebuild_reason: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.schema = _schema()
        self._analyzer = _text_analyzer()
        self._writer: tantivy.IndexWriter | None = None
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            exists = tantivy.Index.exists(str(self.path))
            if exists:
                self._check_sidecar()
                self._index = tantivy.Index.open(str(self.path))
            else:
                self._index = tantivy.Index(self.schema, path=str(self.path), reuse=False)
            self._index.register_tokenizer(TEXT_ANALYZER, self._analyzer)
            self._index.config_reader("Manual")
            self._smoke_test()
        except IndexError_:
            raise
        except BaseException as exc:
            _reraise_interrupts(exc)
            raise IndexError_(f"cannot open the index at {self.path}: {exc}") from exc
        self._applied_seq = self._read_sidecar() if exists else 0
        if not exists:
            self._write_sidecar(0)

    @classmethod
    def open_or_create(cls, path: Path) -> TantivyIndex:
        """Open the index at ``path``, or start an empty one if it is missing, corrupt or was
        built with another schema. When an existing index is discarded the result has
        ``needs_rebuild = True``, ``rebuild_reason`` says why, and ``applied_seq`` is 0."""
        path = Path(path)
        try:
            return cls(path)
        except IndexError_ as exc:
            reason = str(exc)
        _discard(path)
        index = cls(path)
        index.needs_rebuild = True
        index.rebuild_reason = reason
        return index

    # --- writing ---------------------------------------------------------------------------

    def _writer_or_open(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._index.writer(
                    heap_size=WRITER_HEAP_BYTES, num_threads=WRITER_THREADS
                )
            except ValueError as exc:
                raise IndexError_(
                    f"cannot write the index at {self.path} (is another firesift process "
                    f"writing it?): {exc}"
                ) from exc
        return self._writer

    def add(self, posts: Sequence[Post], *, new: bool = False) -> None:
        writer = self._writer_or_open()
        delete = writer.delete_documents_by_term
        add_json = writer.add_json
        dumps = orjson.dumps
        if new:  # a delete costs ~8 us per post, most of it in the commit that applies it
            for post in posts:
                add_json(dumps(post_fields(post)).decode())
            return
        for post in posts:
            delete("key", post.key)
            add_json(dumps(post_fields(post)).decode())

    def delete(self, keys: Sequence[str]) -> None:
        writer = self._writer_or_open()
        for key in keys:
            writer.delete_documents_by_term("key", key)

    def commit(self, seq: int) -> None:
        if self._writer is not None:
            try:
                self._writer.commit()
            except ValueError as exc:
                raise IndexError_(f"index commit failed: {exc}") from exc
        if seq != self._applied_seq:
            self._write_sidecar(seq)
            self._applied_seq = seq

    @property
    def applied_seq(self) -> int:
        return self._applied_seq

    def refresh(self) -> None:
        self._index.reload()

    def doc_freqs(self, words: Sequence[str]) -> dict[str, int] | None:
        searcher = self._index.searcher()
        return {
            w: max(
                (int(searcher.doc_freq("text", t)) for t in self._analyzer.analyze(w)), default=0
            )
            for w in words
        }

    @property
    def num_docs(self) -> int:
        return int(self._index.searcher().num_docs)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.rollback()
            writer.wait_merging_threads()

    # --- searching -------------------------------------------------------------------------

    def search(
        self,
        q: Query,
        *,
        as_of_ms: int | None = None,
        limit: int = 20,
        sort: Sort = "relevance",
    ) -> list[Hit]:
        query = self.compile(q, as_of_ms=as_of_ms)
        if query is None or limit <= 0:
            return []
        try:
            return self._search(query, limit, sort)
        except BaseException as exc:
            _reraise_interrupts(exc)
            raise IndexError_(
                f"search failed, the index at {self.path} may be damaged ({exc}); "
                "delete it to have it rebuilt from the store"
            ) from exc

    def _search(self, query: tantivy.Query, limit: int, sort: Sort) -> list[Hit]:
        searcher = self._index.searcher()
        if sort == "recent":
            result = searcher.search(
                query, limit, count=False, order_by_field="created", order=tantivy.Order.Desc
            )
        else:
            result = searcher.search(query, limit, count=False)
        pairs: list[tuple[Any, tantivy.DocAddress]] = result.hits
        if not pairs:
            return []
        addrs = [addr for _, addr in pairs]
        created = searcher.fast_field_values("created", addrs)
        likes = searcher.fast_field_values("likes", addrs)
        reposts = searcher.fast_field_values("reposts", addrs)
        dups = searcher.fast_field_values("dup", addrs)
        hits = []
        for i, (order_key, addr) in enumerate(pairs):
            doc = searcher.doc(addr)
            key = str(doc.get_first("key"))
            orig = doc.get_first("orig")
            hits.append(
                Hit(
                    key=key,
                    score=0.0 if sort == "recent" else float(order_key),
                    created_ms=int(created[i] or 0),
                    likes=int(likes[i] or 0),
                    reposts=int(reposts[i] or 0),
                    dup=int(dups[i] or 0),
                    orig=str(orig) if orig else key,
                )
            )
        return hits

    def compile(self, q: Query, *, as_of_ms: int | None = None) -> tantivy.Query | None:
        """The tantivy query for ``q`` bounded by ``as_of_ms``; ``None`` if nothing can match
        (an empty time window)."""
        lower = q.since_ms
        upper = q.until_ms - 1 if q.until_ms is not None else None
        if as_of_ms is not None:
            upper = as_of_ms if upper is None else min(upper, as_of_ms)
        if lower is not None and upper is not None and lower > upper:
            return None
        expr = self._node(q.expr) if q.expr is not None else tantivy.Query.all_query()
        if lower is None and upper is None:
            return expr
        window = tantivy.Query.range_query(
            self.schema, "created", tantivy.FieldType.Integer, lower, upper
        )
        return _boolean([(_MUST, expr), (_MUST, _filter(window))])

    def _node(self, node: Node) -> tantivy.Query:
        match node:
            case Word(text=text) | Phrase(text=text):
                return self._words(text)
            case Field(kind=kind, value=value):
                return _filter(self._term(_FIELD_OF[kind], value))
            case Flag(kind=kind):
                return _filter(self._term("flags", kind))
            case MinCount(metric=metric, n=n):
                return _filter(
                    tantivy.Query.range_query(
                        self.schema, _METRIC_FIELDS[metric], tantivy.FieldType.Unsigned, n, None
                    )
                )
            case Not(child=child):
                return _boolean(
                    [(_MUST, tantivy.Query.all_query()), (_MUST_NOT, self._node(child))]
                )
            case And(children=children):
                clauses = [
                    (_MUST_NOT, self._node(c.child))
                    if isinstance(c, Not)
                    else (_MUST, self._node(c))
                    for c in children
                ]
                if all(occur == _MUST_NOT for occur, _ in clauses):
                    clauses.append((_MUST, tantivy.Query.all_query()))
                return _boolean(clauses)
            case Or(children=children):
                return _boolean([(_SHOULD, self._node(c)) for c in children])
        raise AssertionError(f"unhandled query node {node!r}")

    def _term(self, field: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, field, value)

    def _words(self, text: str) -> tantivy.Query:
        tokens = self._analyzer.analyze(text)
        if not tokens:
            return tantivy.Query.empty_query()
        if len(tokens) == 1:
            return self._term("text", tokens[0])
        words: list[str | tuple[int, str]] = list(tokens)
        return tantivy.Query.phrase_query(self.schema, "text", words)

    # --- files -----------------------------------------------------------------------------

    def _smoke_test(self) -> None:
        """Touch every segment's term dictionaries and fast columns so corruption surfaces now,
        not in the middle of a search."""
        searcher = self._index.searcher()
        searcher.search(self._term("key", ""), 1, count=False)

    def _check_sidecar(self) -> None:
        data = self._sidecar_data()
        if data.get("schema") != SCHEMA_VERSION:
            raise IndexError_(
                f"index schema version {data.get('schema')} is not {SCHEMA_VERSION}; "
                "it must be rebuilt"
            )

    def _sidecar_data(self) -> dict[str, Any]:
        sidecar = self.path / SIDECAR
        try:
            data = json.loads(sidecar.read_text("utf-8"))
        except FileNotFoundError:
            raise IndexError_(f"{sidecar} is missing, so the index's position is unknown") from None
        except (OSError, ValueError) as exc:
            raise IndexError_(f"cannot read {sidecar}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("applied_seq"), int):
            raise IndexError_(f"{sidecar} is not a firesift index state file")
        return data

    def _read_sidecar(self) -> int:
        return int(self._sidecar_data()["applied_seq"])

    def _write_sidecar(self, seq: int) -> None:
        data = {"schema": SCHEMA_VERSION, "applied_seq": seq, "backend": self.name}
        target = self.path / SIDECAR
        tmp = target.with_suffix(".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise IndexError_(f"cannot record the index position in {target}: {exc}") from exc


_MUST = tantivy.Occur.Must
_MUST_NOT = tantivy.Occur.MustNot
_SHOULD = tantivy.Occur.Should


def _boolean(clauses: Iterable[tuple[tantivy.Occur, tantivy.Query]]) -> tantivy.Query:
    return tantivy.Query.boolean_query(list(clauses))


def _filter(query: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.const_score_query(query, 0.0)


def _reraise_interrupts(exc: BaseException) -> None:
    """tantivy reports Rust panics (e.g. on a damaged segment) as
    ``pyo3_runtime.PanicException``, a ``BaseException``; those mean "unreadable index" and
    become :class:`IndexError_`, but a real interrupt must still propagate."""
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        raise exc


_INDEX_FILE = re.compile(
    r"^(?:[0-9a-f]{32}(?:\.\d+)?\.[a-z]+|meta\.json|\.managed\.json|\.tantivy-[\w.-]+\.lock"
    r"|firesift-index\.(?:json|tmp))$"
)
"""Names tantivy (segment files, meta, locks) or this module (:data:`SIDECAR`) create."""


def _discard(path: Path) -> None:
    """Delete an unusable index directory, refusing one holding anything but index files."""
    if not path.exists():
        return
    strangers = [f.name for f in path.iterdir()] if path.is_dir() else [path.name]
    strangers = [name for name in strangers if not _INDEX_FILE.match(name)]
    if strangers:
        raise IndexError_(
            f"{path} holds files that are not part of a search index ({', '.join(strangers[:3])}); "
            "refusing to replace it: move them away or choose another index directory"
        )
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
