"""Query understanding: a conversation in, what to search for and when out.

A question such as "Has the Ottawa gunman been identified since 9am?" becomes an
:class:`Understanding`: weighted content terms (``ottawa``, ``gunman``, ``identified``), the
X operators the person typed (kept verbatim and parsed by :mod:`firesift.query`), handles and
hashtags, a :class:`TimeSpec` and an intent. Design decisions:

- **Rules, not a model.** Questions to a stream are short and formulaic; a few regular
  expressions cover the time words people use and cost microseconds. Anything not understood
  stays a search word, so a miss degrades to plain keyword search rather than to nothing.
- **Time is resolved late.** A :class:`TimeSpec` stores what was said ("last 2 hours",
  "since 9am", "yesterday", "on 24 March"), not instants: "now" is decided afterwards by
  :meth:`firesift.answer.engine.AnswerEngine.resolve_as_of` (the wall clock, or the newest post
  of an archive), and :meth:`TimeSpec.bounds` turns the words into ``[since, until)`` then.
  Clock times and dates without a zone are UTC, like every time in firesift.
- **Operators pass through.** ``from:``, ``since:``, ``min_faves:``, ``filter:``, quoted
  phrases and ``-word`` mean what they mean on X: they become hard constraints, while the
  remaining words are soft (OR-ed, BM25-weighted), because a natural-language question ANDed
  word by word matches nothing. An ``@handle`` in a question is a constraint "by or mentioning
  this account"; a ``#tag`` is a heavily weighted term.
- **Follow-ups inherit the topic.** A turn that leans on the conversation ("what about the
  second gunman?", "and in Sydney?", a pronoun, or two content words or fewer) keeps its own
  terms at full weight and adds the previous question's terms at half weight; time and
  operators carry over when the new turn has none.
- **Paraphrases.** News is told in a few interchangeable words: a question about the
  "shooter" is answered by posts about the "gunman" or an "assailant", "named" by
  "identified", "stopped" by "shot" or "took down". :data:`PARAPHRASES` is a small,
  hand-written table of such news vocabulary (groups of interchangeable words, plus a few
  one-way verbs such as "stopped" -> "shot"); :func:`expand` maps each asked term to its
  alternatives, kept apart from ``terms`` in :attr:`Understanding.expansions` so that
  statistics and follow-ups still see only what was asked. A post matching an alternative
  covers the asked term at ``EXPANSION_CREDIT`` of its weight (:class:`TermCoverage`).
- **Answer type.** "Who ..." asks for a ``person`` and "how many ..." for a ``count``;
  retrieval prefers posts that contain a name or a number respectively (the classic
  question-answering answer-type match). "many" itself is a question word, never a term.
- **Intent.** ``happening`` ("what is happening", "latest", "right now") turns on the trending
  story boost; ``claim`` ("is it true that ...", "fact check ...") makes the engine run a claim
  check on the extracted claim; everything else is ``search``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from firesift.answer.model import Message
from firesift.errors import QueryError
from firesift.textnorm import content_words as _content_words
from firesift.trends import STOPWORDS

__all__ = [
    "DEFAULT_WINDOW",
    "EXPANSION_CREDIT",
    "LIVE_WINDOW",
    "NOT_CONTENT",
    "PARAPHRASES",
    "AnswerType",
    "Intent",
    "TermCoverage",
    "TimeSpec",
    "Understanding",
    "content_words",
    "expand",
    "fold",
    "understand",
]

Intent = Literal["happening", "claim", "search"]
AnswerType = Literal["", "person", "count"]
TimeKind = Literal["none", "live", "recent", "since_clock", "day", "since_day", "date"]

DEFAULT_WINDOW = timedelta(hours=24)
"""How far back a question without time words looks when deciding whether the database is an
archive (see :meth:`~firesift.answer.engine.AnswerEngine.resolve_as_of`)."""
LIVE_WINDOW = timedelta(hours=2)
"""The window "right now" / "currently" / "latest" search in (widened when it is empty)."""

_QUESTION_TEXT = """
    happening happened happen going tell know anything something someone anyone news latest
    update updates really true truth actually please give show say saying said says think
    people reports reported report reporting right currently today yesterday tonight morning
    afternoon evening whats what's who's hows there's theres it's anybody everything
    confirm confirmed correct fact check verify rumour rumor rumours rumors claim claims many
    """
QUESTION_WORDS = frozenset(_QUESTION_TEXT.split())
"""Words of how people ask, not of what they ask about (never search terms)."""
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "few": 3, "couple": 2}
_UNIT_SECONDS = {"minute": 60, "min": 60, "hour": 3600, "hr": 3600, "day": 86400, "week": 604800}
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))

_I = re.IGNORECASE
_RE_RECENT = re.compile(
    r"\b(?:in|over|during|within)?\s*(?:the\s+)?(?:last|past|previous)\s+"
    r"(?:(\d+|an?|one|two|three|few|couple)\s+(?:of\s+)?)?"
    r"(minute|min|hour|hr|day|week)s?\b",
    _I,
)
_RE_SINCE_CLOCK = re.compile(
    r"\b(?:since|after|from)\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?\s*(?:utc|gmt)?"
    r"(?=\W|$)",
    _I,
)
_RE_SINCE_DAY = re.compile(r"\bsince\s+(yesterday|midnight|this\s+morning|today)\b", _I)
_RE_YESTERDAY = re.compile(r"\byesterday\b", _I)
_RE_TODAY = re.compile(r"\b(?:today|this\s+(?:morning|afternoon|evening)|tonight)\b", _I)
_RE_LIVE = re.compile(
    r"\b(?:right\s+now|just\s+now|at\s+the\s+moment|as\s+we\s+speak|currently|now)\b", _I
)
_RE_ISO_DATE = re.compile(r"\b(?:on\s+)?(\d{4})-(\d{2})-(\d{2})\b", _I)
_RE_DAY_MONTH = re.compile(
    rf"\b(?:on\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?(?:,?\s+(\d{{4}}))?\b", _I
)
_RE_MONTH_DAY = re.compile(
    rf"\b(?:on\s+)?({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", _I
)

_RE_HAPPENING = re.compile(
    r"\bwhat(?:'s|’s|\s+is|\s+are)?\s+(?:happening|going\s+on|new)\b|\bwhat\s+happened\b"
    r"|\blatest\b|\bany\s+(?:news|updates?)\b|\bupdates?\s+on\b|\bbreaking\b"
    r"|\bwhat(?:'s|’s|\s+is)\s+the\s+(?:situation|news)\b|\bright\s+now\b",
    _I,
)
_RE_CLAIM = re.compile(
    r"^\s*(?:is\s+it\s+(?:true|correct|right|confirmed|accurate|a\s+fact)"
    r"|is\s+there\s+(?:any\s+)?(?:evidence|proof|confirmation)"
    r"|(?:fact[\s-]?check|verify|check)(?:\s+(?:the\s+)?(?:claim|rumou?r))?"
    r"|true\s+or\s+false|did\s+.+\s+really|is\s+the\s+rumou?r)"
    r"(?:\s+that|\s*:|\s+)?\s*",
    _I,
)
_RE_FOLLOWUP = re.compile(
    r"^\s*(?:what|how)\s+about\b|^\s*and\b|^\s*also\b|^\s*what\s+else\b|^\s*any\s+more\b"
    r"|^\s*more\s+on\b|^\s*(?:why|how|when|where|who)\s*\??\s*$",
    _I,
)
_RE_PERSON = re.compile(
    r"^\s*(?:(?:and|so|but)\s+)?who(?:m|se)?\b|\bwho\s+(?:is|was|are|were)\b", _I
)
_RE_COUNT = re.compile(r"\bhow\s+(?:many|much)\b|\bnumber\s+of\b|\bdeath\s+toll\b", _I)
_PRONOUN_TEXT = "he she they him her them it its his their that this those these"
_PRONOUNS = frozenset(_PRONOUN_TEXT.split())

_OPERATOR = re.compile(
    r"(?<!\S)-?(?:from|to|lang|url|since|until|min_faves|min_retweets|min_reposts|min_replies"
    r"|filter):\S+",
    _I,
)
_QUOTED = re.compile(r"(?<!\S)-?[\"“][^\"“”]+[\"”]")
_NEGATED = re.compile(r"(?<!\S)-[#\w][\w'’-]*")
_HANDLE = re.compile(r"(?<![\w@])@([A-Za-z0-9_](?:[\w.-]*\w)?)")
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """A time expression as said; instants come from :meth:`bounds` once "now" is known."""

    kind: TimeKind = "none"
    text: str = ""
    window: timedelta | None = None
    clock: tuple[int, int] | None = None
    day_offset: int = 0
    date: tuple[int | None, int, int] | None = None

    @property
    def explicit(self) -> bool:
        """True when the person bounded the time themselves (never widened silently)."""
        return self.kind not in ("none", "live")

    def lookback(self) -> timedelta | None:
        """How far before "now" the question reaches, for the archive rule; ``None`` for an
        absolute date, which needs no "now"."""
        if self.kind == "date":
            return None
        if self.kind in ("live", "recent"):
            return self.window or LIVE_WINDOW
        if self.kind in ("since_clock", "since_day") or (
            self.kind == "day" and self.day_offset == 0
        ):
            return timedelta(days=1)
        if self.kind == "day":
            return timedelta(days=1 - self.day_offset)
        return DEFAULT_WINDOW

    def bounds(self, as_of: datetime) -> tuple[datetime | None, datetime | None]:
        """``[since, until)`` in UTC relative to ``as_of`` (either may be ``None``)."""
        as_of = as_of.astimezone(UTC)
        midnight = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.kind in ("live", "recent"):
            return as_of - (self.window or LIVE_WINDOW), None
        if self.kind == "since_clock" and self.clock is not None:
            since = midnight.replace(hour=self.clock[0], minute=self.clock[1])
            return (since - timedelta(days=1) if since > as_of else since), None
        if self.kind == "since_day":
            return midnight + timedelta(days=self.day_offset), None
        if self.kind == "day":
            start = midnight + timedelta(days=self.day_offset)
            return start, start + timedelta(days=1)
        if self.kind == "date" and self.date is not None:
            year, month, day = self.date
            try:
                start = datetime(year or as_of.year, month, day, tzinfo=UTC)
            except ValueError:
                return None, None
            if year is None and start > as_of:
                start = start.replace(year=start.year - 1)
            return start, start + timedelta(days=1)
        return None, None

    def describe(self) -> str:
        return self.text or "any time"


@dataclass(frozen=True, slots=True)
class Understanding:
    """What a conversation's last question asks for.

    ``terms`` maps lowercase words (hashtags without ``#``) to weights; ``operators`` is X query
    text the person typed (``from:ap "second gunman" -hoax``), parsed later; ``handles`` are
    accounts the question names; ``claim`` is the statement to check for ``intent == "claim"``.
    """

    question: str
    resolved: str
    terms: dict[str, float]
    operators: str = ""
    handles: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    time: TimeSpec = field(default_factory=TimeSpec)
    intent: Intent = "search"
    claim: str = ""
    followup: bool = False
    expansions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Asked term -> paraphrases that also answer it (see :func:`expand`); not in ``terms``."""
    answer_type: AnswerType = ""

    @property
    def words(self) -> list[str]:
        """The terms, heaviest first."""
        return sorted(self.terms, key=lambda t: (-self.terms[t], t))


NOT_CONTENT = STOPWORDS | QUESTION_WORDS
"""What :func:`content_words` leaves out: stopwords and the words of asking."""


def content_words(text: str) -> list[str]:
    """Lowercase words of ``text`` that carry meaning (stopwords, question words, links,
    handles and one-letter tokens removed), in order, without repeats: the tokenizer of
    :func:`firesift.textnorm.content_words` with :data:`NOT_CONTENT` as its stopwords."""
    return _content_words(text, NOT_CONTENT)


EXPANSION_CREDIT = 0.7
"""Share of an asked term's weight a post earns by matching one of its paraphrases instead."""

_PARAPHRASE_GROUPS = (
    # who did it
    "gunman gunmen shooter shooters assailant assailants attacker attackers",
    "suspect suspects perpetrator perpetrators",
    "hostage-taker hostage-takers captor captors gunman",
    # naming
    "named identified identifies identity",
    # harm
    "dead killed died dies death deaths fatal",
    "injured wounded hurt",
    "shooting shootings gunfire shots",
    # police and security
    "police officers cops",
    "officer policeman policewoman",
    # counts
    "second 2nd another additional multiple numerous",
    # actions and outcomes
    "arrested detained custody apprehended",
    "escaped fled freed",
    "evacuated evacuation cleared",
    "cancelled canceled postponed",
    "stormed raided",
    "crash crashed crashes",
    "plane aircraft jet airliner",
    "survivors survived survivor",
    "demanding demands demanded",
    "missing disappeared vanished",
    "depression depressed depressive",
)
_PARAPHRASE_ONE_WAY = {
    "stopped": "shot killed took taking subdued tackled neutralised neutralized",
    "stop": "shot killed took taking subdued tackled neutralised neutralized",
    "die": "dead killed died death",
    "attack": "shooting attacked",
    "attacked": "shooting shot",
    "claim": "claimed said",
}


def _paraphrases() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for group in _PARAPHRASE_GROUPS:
        words = group.split()
        for w in words:
            out.setdefault(w, []).extend(x for x in words if x != w and x not in out[w])
    for w, alts in _PARAPHRASE_ONE_WAY.items():
        out.setdefault(w, []).extend(x for x in alts.split() if x not in out[w])
    return {w: tuple(alts) for w, alts in out.items()}


PARAPHRASES: dict[str, tuple[str, ...]] = _paraphrases()
"""Word -> words that can stand for it in news text (hand-written, news vocabulary)."""


def expand(terms: dict[str, float]) -> dict[str, tuple[str, ...]]:
    """Asked term -> its paraphrases (:data:`PARAPHRASES`) that are not asked themselves."""
    out: dict[str, tuple[str, ...]] = {}
    for term in terms:
        alts = tuple(a for a in PARAPHRASES.get(term, ()) if a not in terms)
        if alts:
            out[term] = alts
    return out


def _stem(word: str) -> str:
    return word[: max(4, len(word) - 2)]


_TOKEN = re.compile(r"\w+")


def fold(text: str) -> str:
    """Lowercase ``text`` without accents ("Goële" -> "goele"), as the index folds it."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


_ASCII_WORD_BYTES = bytes(
    c if c < 128 and (chr(c).isalnum() or chr(c) == "_") else 32 for c in range(256)
)
"""Byte table keeping the ASCII word characters (``\\w``: letters, digits, ``_``), every other
byte a space."""


def _folded_words(text: str) -> list[str]:
    """The ``\\w+`` words of :func:`fold` ``(text)``, in order, repeats included.

    ASCII text (nearly every post) goes through a byte table and ``split`` instead of the
    regex: every non-word character becomes a space, so the words are the same, at a third of
    the cost; coverage tokenises every candidate post of every answer."""
    folded = fold(text)
    if folded.isascii():
        return folded.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    return _TOKEN.findall(folded)


def _stems(term: str) -> tuple[str, ...]:
    """Stems of a term's parts: ``hostage-taker`` is covered by "hostage taker" too."""
    parts = _TOKEN.findall(fold(term))
    return tuple(_stem(p) if len(parts) == 1 else p for p in parts) or (term,)


class TermCoverage:
    """How much of a question's weighted terms a text covers, 0..1.

    An asked term is covered by a word starting with its crude stem (its first ``len - 2``
    letters, at least four), at its full weight; failing that, by one of its paraphrases at
    ``EXPANSION_CREDIT`` of the weight, or of the paraphrase's own weight when that is lower
    (``weights`` may hold weights for paraphrases too: matching a common synonym proves less).

    Retrieval asks this of every candidate post, so "some word starts with stem ``s``" is a set
    lookup rather than a scan of every word for every stem: see :meth:`prefixes`.
    """

    def __init__(
        self,
        terms: dict[str, float],
        expansions: dict[str, tuple[str, ...]] | None = None,
        weights: dict[str, float] | None = None,
    ) -> None:
        self.terms = {t: (weights or {}).get(t, w) for t, w in terms.items()}
        self.total = sum(self.terms.values())
        self.stems = {t: _stems(t) for t in self.terms}
        self.alts: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        for t, alts in (expansions or {}).items():
            if t not in self.terms:
                continue
            w = self.terms[t]
            self.alts[t] = [
                (_stems(a), EXPANSION_CREDIT * min(w, (weights or {}).get(a, w))) for a in alts
            ]
        self._plan = [
            (
                frozenset(self.stems[t]),
                w,
                [(frozenset(s), c) for s, c in self.alts.get(t, ())],
            )
            for t, w in self.terms.items()
        ]
        every = {
            s
            for stems, _, alts in self._plan
            for group in (stems, *(a for a, _ in alts))
            for s in group
        }
        self._lengths = tuple(sorted({len(s) for s in every}))
        self._key = self._lengths[0] if self._lengths else 0
        self._keys = frozenset(s[: self._key] for s in every)

    def prefixes(self, text: str) -> set[str]:
        """Cuts of the words of ``text`` (folded) such that a stem is among them exactly when
        some word starts with it.

        A word is cut to every stem length, but only when it starts like some stem: its first
        ``k`` letters, ``k`` the shortest stem length, are a stem's first ``k``. Other words
        cannot start with any stem, and most words of a post are such words. (A word shorter
        than a cut stays whole; it equals a stem only if it is that stem.)"""
        k, keys, lengths = self._key, self._keys, self._lengths
        words = _folded_words(text)
        return {w[:n] for w in words if w[:k] in keys for n in lengths}

    def __call__(self, text: str) -> float:
        if self.total <= 0:
            return 1.0
        prefixes = self.prefixes(text)
        got = 0.0
        for stems, w, alts in self._plan:
            if stems <= prefixes:
                got += w
            elif alts:
                got += max((c for s, c in alts if s <= prefixes), default=0.0)
        return got / self.total


def _time(text: str) -> tuple[TimeSpec, str]:
    """The first time expression in ``text`` and the text without it."""

    def cut(m: re.Match[str]) -> str:
        return (text[: m.start()] + " " + text[m.end() :]).strip()

    if m := _RE_RECENT.search(text):
        raw = (m.group(1) or "1").lower()
        n = int(raw) if raw.isdigit() else _NUMBERS.get(raw, 1)
        unit = m.group(2).lower()
        window = timedelta(seconds=n * _UNIT_SECONDS[unit])
        return TimeSpec("recent", m.group(0).strip(), window=window), cut(m)
    if m := _RE_SINCE_DAY.search(text):
        word = m.group(1).lower()
        offset = -1 if word == "yesterday" else 0
        return TimeSpec("since_day", m.group(0), day_offset=offset), cut(m)
    if (m := _RE_SINCE_CLOCK.search(text)) and (m.group(2) or m.group(3)):
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        ampm = (m.group(3) or "").lower().replace(".", "")
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        if hour < 24 and minute < 60:
            return TimeSpec("since_clock", m.group(0).strip(), clock=(hour, minute)), cut(m)
    if m := _RE_ISO_DATE.search(text):
        date = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return TimeSpec("date", m.group(0).strip(), date=date), cut(m)
    if m := _RE_DAY_MONTH.search(text):
        year = int(m.group(3)) if m.group(3) else None
        spec = TimeSpec(
            "date", m.group(0).strip(), date=(year, _MONTHS[m.group(2).lower()], int(m.group(1)))
        )
        return spec, cut(m)
    if m := _RE_MONTH_DAY.search(text):
        year = int(m.group(3)) if m.group(3) else None
        spec = TimeSpec(
            "date", m.group(0).strip(), date=(year, _MONTHS[m.group(1).lower()], int(m.group(2)))
        )
        return spec, cut(m)
    if m := _RE_YESTERDAY.search(text):
        return TimeSpec("day", m.group(0), day_offset=-1), cut(m)
    if m := _RE_TODAY.search(text):
        return TimeSpec("since_day", m.group(0), day_offset=0), cut(m)
    if m := _RE_LIVE.search(text):
        return TimeSpec("live", m.group(0), window=LIVE_WINDOW), cut(m)
    return TimeSpec(), text


def _single(question: str) -> Understanding:
    text = " ".join(question.split())
    intent: Intent = "search"
    claim = ""
    if m := _RE_CLAIM.match(text):
        rest = text[m.end() :].strip(" ?!.")
        if len(content_words(rest)) >= 2:
            intent, claim = "claim", rest
    if intent == "search" and _RE_HAPPENING.search(text):
        intent = "happening"
    operators = [m.group(0) for m in _OPERATOR.finditer(text)]
    body = _OPERATOR.sub(" ", text)
    operators += [m.group(0) for m in _QUOTED.finditer(body)]
    body = _QUOTED.sub(" ", body)
    operators += [m.group(0) for m in _NEGATED.finditer(body)]
    body = _NEGATED.sub(" ", body)
    spec, body = _time(body)
    handles = tuple(dict.fromkeys(h.lower() for h in _HANDLE.findall(body)))
    hashtags = tuple(dict.fromkeys(t.lower() for t in _HASHTAG.findall(body)))
    terms: dict[str, float] = {}
    for tag in hashtags:
        terms[tag] = 1.5
    for w in content_words(_HASHTAG.sub(" ", body)):
        terms.setdefault(w, 1.0)
    if claim and not terms:
        terms = dict.fromkeys(content_words(claim), 1.0)
    return Understanding(
        question=question,
        resolved=question,
        terms=terms,
        operators=" ".join(operators),
        handles=handles,
        hashtags=hashtags,
        time=spec,
        intent=intent,
        claim=claim,
        expansions=expand(terms),
        answer_type=_answer_type(text),
    )


def _answer_type(text: str) -> AnswerType:
    if _RE_COUNT.search(text):
        return "count"
    if _RE_PERSON.search(text):
        return "person"
    return ""


def _is_followup(u: Understanding) -> bool:
    if _RE_FOLLOWUP.search(u.question):
        return True
    words = {w.strip("?.!,").lower() for w in u.question.split()}
    return (bool(words & _PRONOUNS) and len(u.terms) <= 3) or len(u.terms) <= 1


def understand(messages: Sequence[Message]) -> Understanding:
    """Understand the last user message of ``messages``, resolving a follow-up against the
    earlier user turns. Raises :class:`~firesift.errors.QueryError` if there is no question."""
    asked = [m.content for m in messages if m.role == "user" and m.content.strip()]
    if not asked:
        raise QueryError("no question: the conversation has no user message with text")
    u = _single(asked[-1])
    if len(asked) == 1 or not _is_followup(u):
        return u
    previous = understand([Message("user", q) for q in asked[:-1]])
    terms = dict(u.terms)
    for word, weight in previous.terms.items():
        terms.setdefault(word, weight * 0.5)
    topic = " ".join(previous.words[:6])
    return replace(
        u,
        resolved=f"{u.question} (context: {topic})" if topic else u.question,
        terms=terms,
        operators=u.operators or previous.operators,
        handles=u.handles or previous.handles,
        time=u.time if u.time.kind != "none" else previous.time,
        intent="happening" if u.intent == "search" and previous.intent == "happening" else u.intent,
        followup=True,
        expansions=expand(terms),
    )
