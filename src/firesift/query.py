"""X-style search syntax, parsed into a small typed tree that knows nothing about the engine.

Grammar (the same precedence as X: ``OR`` binds tighter than the implicit AND)::

    query    := sequence EOF
    sequence := or_expr*                       -- implicit AND
    or_expr  := unary ("OR" unary)*            -- OR is uppercase; "or" is a word
    unary    := "-" atom | atom                -- "-" glued to what it negates
    atom     := "(" sequence ")" | '"' words '"' | #tag | @handle | operator:value | word

so ``a b OR c d`` means ``a AND (b OR c) AND d``.

Representation (:class:`Query`):

- ``expr`` is the boolean tree of :data:`Node` values: :class:`Word`, :class:`Phrase` (words
  adjacent and in order; how words are matched, e.g. stemmed, is the index's business),
  :class:`Field` (``#tag``, ``@mention``, ``from:``, ``to:``,
  ``lang:``, ``url:``), :class:`Flag` (``filter:``), :class:`MinCount` (``min_faves:`` ...) and
  :class:`Not` / :class:`And` / :class:`Or`. ``And`` and ``Or`` are flattened (no ``And`` directly
  inside an ``And``), a parenthesised group of one item is that item, and ``-(-x)`` is ``x``.
- Time bounds are pulled out of the tree into ``since_ms`` (inclusive) and ``until_ms``
  (exclusive), epoch milliseconds UTC, because they bound the whole search (the index turns them
  and the caller's ``as_of`` into one range). So they may only appear at the top level: not
  inside parentheses, ``OR`` or ``-``. A bare ``until:`` date means "before that day's midnight",
  as on X. Repeating a bound intersects them.
- Everything else stays in the tree because X lets it combine freely
  (``from:a OR from:b``, ``-filter:replies``).

``str(query)`` (= :meth:`Query.to_text`) prints canonical text: lowercase words, X's operator
spellings (``min_retweets`` for ``min_reposts``, ``filter:retweets`` for ``filter:reposts``),
``#``/``@`` prefixes, bounds last; ``parse(str(q)) == q`` for every parsed ``q``.

Errors are :class:`~firesift.errors.QueryError` with the 0-based ``position`` of the problem.
A word shaped like ``name:value`` with an unknown name is an error (naming the operator and
listing the known ones from :data:`OPERATORS`) rather than a silent plain word, except for
URLs (``https://...``) and words ending in a bare colon, which stay words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias

from firesift.errors import QueryError
from firesift.textnorm import handle_key, tag_key, url_host

__all__ = [
    "MAX_DEPTH",
    "OPERATORS",
    "And",
    "Field",
    "FieldKind",
    "Flag",
    "FlagKind",
    "Metric",
    "MinCount",
    "Node",
    "Not",
    "Operator",
    "Or",
    "Phrase",
    "Query",
    "Word",
    "parse",
]

FieldKind = Literal["hashtag", "mention", "from", "to", "lang", "url"]
FlagKind = Literal["links", "media", "replies", "reposts"]
Metric = Literal["likes", "reposts", "replies"]


@dataclass(frozen=True, slots=True)
class Word:
    """A bare word, lowercased. One that the index splits into several tokens
    (``covid-19``, a URL) matches them as a phrase."""

    text: str

    def to_text(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Phrase:
    """Quoted words that must appear adjacent and in this order (lowercased, single-spaced)."""

    text: str

    def to_text(self) -> str:
        return f'"{self.text}"'


_FIELD_PREFIX: dict[FieldKind, str] = {
    "hashtag": "#",
    "mention": "@",
    "from": "from:",
    "to": "to:",
    "lang": "lang:",
    "url": "url:",
}


@dataclass(frozen=True, slots=True)
class Field:
    """An exact match on a post attribute: a hashtag, a mentioned handle, the author
    (``from``), the account replied to (``to``), a language tag or a link's domain."""

    kind: FieldKind
    value: str

    def to_text(self) -> str:
        return _FIELD_PREFIX[self.kind] + self.value


_FLAG_TEXT: dict[FlagKind, str] = {
    "links": "links",
    "media": "media",
    "replies": "replies",
    "reposts": "retweets",
}


@dataclass(frozen=True, slots=True)
class Flag:
    """``filter:kind``: the post has links / media, is a reply, is a repost."""

    kind: FlagKind

    def to_text(self) -> str:
        return f"filter:{_FLAG_TEXT[self.kind]}"


_METRIC_TEXT: dict[Metric, str] = {
    "likes": "min_faves",
    "reposts": "min_retweets",
    "replies": "min_replies",
}


@dataclass(frozen=True, slots=True)
class MinCount:
    """At least ``n`` likes / reposts / replies (as last indexed)."""

    metric: Metric
    n: int

    def to_text(self) -> str:
        return f"{_METRIC_TEXT[self.metric]}:{self.n}"


@dataclass(frozen=True, slots=True)
class Not:
    """Posts that do not match ``child``."""

    child: Node

    def to_text(self) -> str:
        inner = self.child.to_text()
        return f"-({inner})" if isinstance(self.child, And | Or) else f"-{inner}"


@dataclass(frozen=True, slots=True)
class And:
    """Posts matching every child (two or more, none of them an ``And``)."""

    children: tuple[Node, ...]

    def to_text(self) -> str:
        return " ".join(c.to_text() for c in self.children)


@dataclass(frozen=True, slots=True)
class Or:
    """Posts matching any child (two or more, none of them an ``Or``)."""

    children: tuple[Node, ...]

    def to_text(self) -> str:
        return " OR ".join(
            f"({c.to_text()})" if isinstance(c, And) else c.to_text() for c in self.children
        )


Node: TypeAlias = Word | Phrase | Field | Flag | MinCount | Not | And | Or


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the boolean ``expr`` (``None`` when the query is only time bounds) and
    the time window ``[since_ms, until_ms)`` in epoch milliseconds UTC."""

    expr: Node | None
    since_ms: int | None = None
    until_ms: int | None = None

    def to_text(self) -> str:
        parts = [self.expr.to_text()] if self.expr is not None else []
        if self.since_ms is not None:
            parts.append(f"since:{_format_time(self.since_ms)}")
        if self.until_ms is not None:
            parts.append(f"until:{_format_time(self.until_ms)}")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    def walk(self) -> Iterator[Node]:
        """Every node of ``expr``, parents before children."""
        stack = [self.expr] if self.expr is not None else []
        while stack:
            node = stack.pop()
            yield node
            if isinstance(node, And | Or):
                stack.extend(reversed(node.children))
            elif isinstance(node, Not):
                stack.append(node.child)

    def positive_terms(self) -> list[Word | Phrase]:
        """Words and phrases the results should contain (not under a ``-``), in query order:
        what a caller highlights or scores evidence sentences with."""
        out: list[Word | Phrase] = []

        def visit(node: Node) -> None:
            if isinstance(node, Word | Phrase):
                out.append(node)
            elif isinstance(node, And | Or):
                for child in node.children:
                    visit(child)

        if self.expr is not None:
            visit(self.expr)
        return out


@dataclass(frozen=True, slots=True)
class _Bound:
    kind: Literal["since", "until"]
    ms: int


_Item: TypeAlias = Node | _Bound
_Build: TypeAlias = Callable[[str, "_Ctx"], _Item]


@dataclass(frozen=True, slots=True)
class Operator:
    """One ``name:value`` operator: how to turn its value into a node, and a usage hint."""

    name: str
    usage: str
    build: _Build


@dataclass(frozen=True, slots=True)
class _Ctx:
    query: str
    name: str
    value_pos: int

    def fail(self, message: str) -> QueryError:
        return QueryError(message, query=self.query, position=self.value_pos)


_HANDLE = re.compile(r"^[\w.:@-]+$", re.UNICODE)
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_MENTION_WORD = re.compile(r"^@+([\w](?:[\w.:@-]*[\w])?)", re.UNICODE)


def _handle(kind: FieldKind) -> _Build:
    def build(value: str, ctx: _Ctx) -> _Item:
        handle = handle_key(value.rstrip(".,;!?"))
        if not handle or not _HANDLE.match(handle):
            raise ctx.fail(f"{ctx.name}: needs an account handle, got {value!r}")
        return Field(kind, handle)

    return build


def _lang(value: str, ctx: _Ctx) -> _Item:
    if not _LANG.match(value):
        raise ctx.fail(f"lang: needs a language code such as en or pt-BR, got {value!r}")
    return Field("lang", value.lower().replace("_", "-"))


def _url(value: str, ctx: _Ctx) -> _Item:
    host = url_host(value)
    if not host:
        raise ctx.fail(f"url: needs a domain such as example.com, got {value!r}")
    path = value.split("://", 1)[-1].partition("/")[2]
    if path.strip("/"):
        raise ctx.fail(f"url: matches link domains only (url:{host}); paths are not indexed")
    return Field("url", host)


def _min(metric: Metric) -> _Build:
    def build(value: str, ctx: _Ctx) -> _Item:
        if not value.isascii() or not value.isdigit():
            raise ctx.fail(
                f"{ctx.name}: needs a whole number such as {ctx.name}:100, got {value!r}"
            )
        n = int(value) if len(value) <= 19 else _MAX_COUNT + 1  # int() refuses 4,300+ digits
        if n > _MAX_COUNT:
            raise ctx.fail(f"{ctx.name}: the number is larger than any count ({_MAX_COUNT})")
        return MinCount(metric, n)

    return build


_MAX_COUNT = (1 << 63) - 1
"""The largest count a post can have (the store's largest integer)."""

_FILTERS: dict[str, FlagKind] = {
    "links": "links",
    "media": "media",
    "replies": "replies",
    "retweets": "reposts",
    "reposts": "reposts",
}


def _filter(value: str, ctx: _Ctx) -> _Item:
    kind = _FILTERS.get(value.lower())
    if kind is None:
        known = ", ".join(f"filter:{k}" for k in _FILTERS)
        raise ctx.fail(f"unknown filter {value!r}; known filters: {known}")
    return Flag(kind)


def _time(kind: Literal["since", "until"]) -> _Build:
    def build(value: str, ctx: _Ctx) -> _Item:
        return _Bound(kind, _parse_time(value, ctx))

    return build


def _parse_time(value: str, ctx: _Ctx) -> int:
    text = value.strip()
    if text.upper().endswith("_UTC"):
        text = text[:-4] + "+00:00"
    text = text.replace("_", "T", 1)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
    if dt is None or not _DATE_PREFIX.match(value):
        raise ctx.fail(
            f"{ctx.name}: needs a date (2024-03-24) or a UTC time "
            f"(2024-03-24T13:05:00Z or 2024-03-24_13:05:00_UTC), got {value!r}"
        )
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:  # 9999-12-31T23:59:59-01:00 is past the last instant a datetime holds in UTC
        dt = dt.astimezone(UTC)
    except OverflowError:
        raise ctx.fail(f"{ctx.name}: {value!r} is out of range") from None
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // _MS


_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}(?:$|[T_ ])")
_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def _format_time(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + ms * _MS
    day = dt.date().isoformat()  # not strftime's %Y, which drops the zeros of year 0001
    if ms % 86_400_000 == 0:
        return day
    if ms % 1000 == 0:
        return f"{day}T{dt:%H:%M:%S}Z"
    return f"{day}T{dt:%H:%M:%S}.{ms % 1000:03d}Z"


def _ops(*ops: Operator) -> Mapping[str, Operator]:
    return {op.name: op for op in ops}


OPERATORS: Mapping[str, Operator] = _ops(
    Operator("from", "from:handle", _handle("from")),
    Operator("to", "to:handle", _handle("to")),
    Operator("since", "since:2024-03-24", _time("since")),
    Operator("until", "until:2024-03-24", _time("until")),
    Operator("lang", "lang:en", _lang),
    Operator("url", "url:example.com", _url),
    Operator("min_faves", "min_faves:100", _min("likes")),
    Operator("min_retweets", "min_retweets:10", _min("reposts")),
    Operator("min_reposts", "min_reposts:10", _min("reposts")),
    Operator("min_replies", "min_replies:5", _min("replies")),
    Operator("filter", "filter:links|media|replies|retweets", _filter),
)
"""Every ``name:value`` operator by name; error messages list these."""


# --- lexer -------------------------------------------------------------------------------------

_LPAREN, _RPAREN, _OR, _NEG, _PHRASE, _WORD, _EOF = range(7)
_OPEN_QUOTES = '"“”'
_CLOSE_QUOTES = '"“”'
_WORD_END = frozenset(" \t\r\n\f\v()" + _OPEN_QUOTES)
_OPERATOR_WORD = re.compile(r"^([A-Za-z][A-Za-z_]*):(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: int
    text: str
    pos: int


def _lex(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c == "(":
            toks.append(_Tok(_LPAREN, c, i))
            i += 1
        elif c == ")":
            toks.append(_Tok(_RPAREN, c, i))
            i += 1
        elif c in _OPEN_QUOTES:
            end = next((j for j in range(i + 1, n) if q[j] in _CLOSE_QUOTES), -1)
            if end < 0:
                raise QueryError('unterminated quote: add a closing "', query=q, position=i)
            _push_content(toks, _Tok(_PHRASE, q[i + 1 : end], i))
            i = end + 1
        elif c == "-" and i + 1 < n and not q[i + 1].isspace() and q[i + 1] not in "-)":
            toks.append(_Tok(_NEG, c, i))
            i += 1
        else:
            j = i
            while j < n and q[j] not in _WORD_END:
                j += 1
            word = q[i:j]
            if word == "OR":
                toks.append(_Tok(_OR, word, i))
            else:
                _push_content(toks, _Tok(_WORD, word, i))
            i = j
    toks.append(_Tok(_EOF, "", n))
    return toks


def _push_content(toks: list[_Tok], tok: _Tok) -> None:
    """Add a word or phrase; one with no letters or digits is dropped, with a ``-`` before it."""
    if any(ch.isalnum() for ch in tok.text):
        toks.append(tok)
    elif toks and toks[-1].kind == _NEG and toks[-1].pos == tok.pos - 1:
        toks.pop()


# --- parser ------------------------------------------------------------------------------------

MAX_DEPTH = 64
"""Deepest parenthesis nesting accepted: the parser, ``str()`` and the index's compiler recurse
once per level, so ``((((...`` a hundred thousand deep must be an error, not a RecursionError."""


class _Parser:
    def __init__(self, q: str) -> None:
        self.q = q
        self.toks = _lex(q)
        self.i = 0
        self.pos: dict[int, int] = {}
        self.since: int | None = None
        self.until: int | None = None
        self.bound_pos = 0
        self.depth = 0

    def fail(self, message: str, position: int) -> QueryError:
        return QueryError(message, query=self.q, position=position)

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def mark(self, node: Node, position: int) -> Node:
        self.pos[id(node)] = position
        return node

    def run(self) -> Query:
        if self.tok.kind == _EOF:
            raise self.fail("empty query: type some words or operators", 0)
        items = self.sequence(depth=0)
        if self.tok.kind == _RPAREN:
            raise self.fail("unbalanced parenthesis: this ')' has no matching '('", self.tok.pos)
        expr = self.conjoin(items)
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise self.fail("empty time window: since: must be before until:", self.bound_pos)
        if expr is not None and self.since is None and self.until is None:
            negative = _first_negative(expr)
            if negative is not None:
                raise self.fail(
                    "a query needs at least one positive term or filter: "
                    "a '-' term only removes posts from other matches",
                    self.pos.get(id(negative), 0),
                )
        return Query(expr, self.since, self.until)

    def sequence(self, depth: int) -> list[Node]:
        items: list[Node] = []
        while self.tok.kind not in (_EOF, _RPAREN):
            if self.tok.kind == _OR:
                raise self.fail("OR needs a term on its left", self.tok.pos)
            start = self.tok.pos
            item = self.or_expr()
            if isinstance(item, _Bound):
                if depth:
                    raise self.fail(
                        f"{item.kind}: applies to the whole query; move it out of the parentheses",
                        start,
                    )
                self.bound(item, start)
            else:
                items.append(item)
        return items

    def bound(self, item: _Bound, position: int) -> None:
        self.bound_pos = position
        if item.kind == "since":
            self.since = item.ms if self.since is None else max(self.since, item.ms)
        else:
            self.until = item.ms if self.until is None else min(self.until, item.ms)

    def or_expr(self) -> _Item:
        start = self.tok.pos
        first = self.unary()
        if self.tok.kind != _OR:
            return first
        branches = [(first, start)]
        while self.tok.kind == _OR:
            op = self.take()
            if self.tok.kind in (_EOF, _RPAREN, _OR):
                raise self.fail("OR needs a term on its right", op.pos)
            position = self.tok.pos
            branches.append((self.unary(), position))
        nodes: list[Node] = []
        for branch, position in branches:
            if isinstance(branch, _Bound):
                raise self.fail(f"{branch.kind}: cannot be part of an OR", position)
            nodes.extend(branch.children if isinstance(branch, Or) else (branch,))
        return self.mark(Or(tuple(nodes)), start)

    def unary(self) -> _Item:
        if self.tok.kind != _NEG:
            return self.atom()
        neg = self.take()
        if self.tok.kind in (_EOF, _RPAREN, _OR):
            raise self.fail("'-' must be followed by the term to exclude", neg.pos)
        child = self.atom()
        if isinstance(child, _Bound):
            other = "until" if child.kind == "since" else "since"
            raise self.fail(f"{child.kind}: cannot be negated; use {other}: instead", neg.pos)
        if isinstance(child, Not):
            return self.mark(child.child, neg.pos)
        return self.mark(Not(child), neg.pos)

    def atom(self) -> _Item:
        tok = self.take()
        if tok.kind == _LPAREN:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"parentheses nested more than {MAX_DEPTH} deep", tok.pos)
            items = self.sequence(depth=1)
            if self.tok.kind != _RPAREN:
                raise self.fail("unbalanced parenthesis: this '(' is never closed", tok.pos)
            self.take()
            self.depth -= 1
            node = self.conjoin(items)
            if node is None:
                raise self.fail("empty parentheses", tok.pos)
            return node
        if tok.kind == _PHRASE:
            return self.mark(Phrase(" ".join(tok.text.lower().split())), tok.pos)
        if tok.kind == _WORD:
            return self.word(tok)
        raise self.fail("unexpected ')'" if tok.kind == _RPAREN else "unexpected token", tok.pos)

    def word(self, tok: _Tok) -> _Item:
        text = tok.text
        if text[0] == "#" and len(text) > 1:
            return self.mark(Field("hashtag", tag_key(text.rstrip(".,;:!?"))), tok.pos)
        if text[0] == "@":
            handle = _MENTION_WORD.match(text)
            if handle is None:
                raise self.fail(f"{text!r} is not an @handle", tok.pos)
            return self.mark(Field("mention", handle_key(handle.group(1))), tok.pos)
        m = _OPERATOR_WORD.match(text)
        if m and m.group(2) and not m.group(2).startswith("//"):
            name, value = m.group(1).lower(), m.group(2)
            op = OPERATORS.get(name)
            if op is None:
                known = ", ".join(f"{k}:" for k in OPERATORS)
                raise self.fail(
                    f"unknown operator {m.group(1)}: (known operators: {known}, #tag, @handle)",
                    tok.pos,
                )
            item = op.build(value, _Ctx(self.q, name, tok.pos + len(name) + 1))
            return item if isinstance(item, _Bound) else self.mark(item, tok.pos)
        if m and not m.group(2) and m.group(1).lower() in OPERATORS:
            raise self.fail(
                f"{m.group(1).lower()}: needs a value, e.g. {OPERATORS[m.group(1).lower()].usage}",
                tok.pos + len(text),
            )
        return self.mark(Word(text.lower()), tok.pos)

    def conjoin(self, items: list[Node]) -> Node | None:
        flat: list[Node] = []
        for item in items:
            flat.extend(item.children if isinstance(item, And) else (item,))
        if not flat:
            return None
        if len(flat) == 1:
            return flat[0]
        node = And(tuple(flat))
        self.pos[id(node)] = self.pos.get(id(flat[0]), 0)
        return node


def _first_negative(node: Node) -> Node | None:
    """The first node that keeps ``node`` from selecting posts by itself, or ``None`` when it
    does: an ``And`` needs one positive child, an ``Or`` needs every branch positive."""
    if isinstance(node, Not):
        return node
    if isinstance(node, And):
        found = [_first_negative(c) for c in node.children]
        return found[0] if all(f is not None for f in found) else None
    if isinstance(node, Or):
        return next((f for c in node.children if (f := _first_negative(c)) is not None), None)
    return None


def parse(text: str) -> Query:
    """Parse X-style query ``text`` into a :class:`Query`.

    Raises :class:`~firesift.errors.QueryError` (with ``position``) when the query is empty,
    has an unterminated quote, unbalanced parentheses or ones nested deeper than
    :data:`MAX_DEPTH`, an ``OR`` missing a side, an unknown operator, a bad operator value
    (a count beyond any post's, a time outside the years 1-9999), or no positive term at all.
    """
    return _Parser(text).run()
