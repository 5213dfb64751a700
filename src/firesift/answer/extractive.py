"""The ``extractive`` composer: an answer made only of sentences copied from cited posts.

No model weights, no network: the default composer. Layout::

    As of 16:00 UTC on 22 Oct 2014: 212 posts from 180 accounts, first seen 13:51.
    Claim check: disputed. Supported by 3 accounts [4][5]; denied by 2 [6]; questioned by 1 [7].

    Canadian official identifies dead Ottawa gunman as Michael Zehaf-Bibeau [1][2] (2 accounts)

    - This is a photo of Michael Zehaf-Bibeau, gunman in this morning's shootings [3]
      (one account: @CBCOttawa)
      Disputed in replies: "That's not him" [8]

Design decisions:

- **Never invent a sentence.** Every sentence after the header is a sentence of a cited post,
  cleaned of ``RT @x:``, links, ``@handles``, "BREAKING:" labels, trailing hashtag runs and
  anything shaped like a citation marker (:func:`firesift.answer.citations.strip_markers`).
  The only words firesift adds are the fixed frames: the header, "Claim check", "(one account:
  @x)" / "(N accounts)", "Disputed in replies" / "Questioned in replies" and the "nothing in the
  stream answers this" line.
- **Which sentence.** Each hit's sentences are scored by the question's weighted terms they
  cover (crude prefix stemming, paraphrases at a discount: see
  :class:`~firesift.answer.understand.TermCoverage`), with a small preference for the first
  sentence (the lede); sentences under four words are skipped.
- **Points and storylines.** A sentence whose words overlap an existing point's by Jaccard
  >= ``SAME_POINT`` is that point's corroboration (its marker is added, its account counted),
  so "N accounts" counts independent accounts saying the same thing. Points are grouped into
  storylines by trend story, then thread, then word overlap >= ``SAME_STORY``; the best point
  is the headline and the rest are bullets, one block per storyline.
- **Both sides.** Replies in the pool with a ``deny`` (or ``query``) stance towards a point's
  post are shown under it; for "is it true" questions the claim check's counts and a few posts
  per side come first.
- **Which points.** A point is shown when its sentence covers at least ``MIN_COVERAGE`` of the
  question's term weight, or when retrieval scored its post at least ``STRONG_SCORE`` of the
  best hit's score (retrieval saw paraphrases, feedback terms and priors that a sentence's
  words alone do not show: "Germanwings co-pilot treated for depression" answers a question
  about Andreas Lubitz).
- **Saying no.** With no hits, or no hit covering at least ``MIN_COVERAGE`` of the question's
  term weight, the answer says "Nothing in the stream answers this" (``grounded=False``),
  listing the closest posts only as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from firesift.answer.citations import strip_markers
from firesift.answer.composer import ComposeContext, Composer, register_composer
from firesift.answer.evidence import EvidenceItem
from firesift.answer.model import AnswerDelta, AnswerDone, AnswerEvent, Evidence, Verdict
from firesift.answer.understand import TermCoverage, content_words
from firesift.trends import clean_text

__all__ = [
    "ExtractiveComposer",
    "best_sentence",
    "clean_post_text",
    "header",
    "split_sentences",
]

SAME_POINT = 0.5
SAME_STORY = 0.2
MIN_COVERAGE = 0.34
STRONG_SCORE = 0.25
MAX_POINTS = 8
MAX_SENTENCE_CHARS = 240

_LABEL = re.compile(
    r"^\s*(?:(?:breaking|just\s+in|update|updated|latest|developing|urgent|alert)"
    r"(?:\s+news)?|news)\s*[:|\-–—]+\s*",
    re.IGNORECASE,
)
_TRAILING_TAGS = re.compile(
    r"(?=\s+#)(?<=\S)(?<!\b(?:of|in|at|on|to))(?<!\bfor)(?<!\bfrom)(?<!\bnear)(?<!\bthe)"
    r"(?:\s+#\w+)+\s*$",
    re.IGNORECASE,
)
"""Hashtags closing a post are dropped, unless the sentence needs them ("... of #Hamilton").
The leading ``(?=\\s+#)`` only repeats what the match needs anyway: it rejects most positions
before the five look-behinds are tried (6x faster on real posts)."""
_HASH = re.compile(r"#(?<![\w&]#)(\w)")
"""A ``#`` not after a word character or ``&``; written to start with the ``#`` itself, which
the regex engine finds by a fast scan, instead of testing the look-behind at every position."""
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"“'A-Z0-9])|\s*\n+\s*|\s+[|]\s+")
_WORD = re.compile(r"\w+")


def clean_post_text(text: str) -> str:
    """A post's text as it may appear in an answer (see the module docstring)."""
    text = text.replace("&amp;", "&").replace("&gt;", ">").replace("&lt;", "<")
    text = strip_markers(clean_text(text))
    text = _LABEL.sub("", text)
    text = _TRAILING_TAGS.sub("", text)
    text = _HASH.sub(r"\1", text)
    return " ".join(text.split()).strip(" -–—:|")


_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:Cpl|Sgt|Lt|Col|Gen|Capt|Maj|Cmdr|Adm|Gov|Sen|Rep|Pres|Mr|Mrs|Ms|Dr|Prof|St|"
    r"Jr|Sr|No|vs|Mt|Ft|U\.S|U\.K|Insp|Supt|Const|Det)\.$"
)


def _merge_abbreviations(parts: list[str]) -> list[str]:
    """Undo splits after titles and common abbreviations ("Cpl. Nathan Cirillo")."""
    out: list[str] = []
    for part in parts:
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of cleaned text."""
    return _merge_abbreviations([s.strip() for s in _SPLIT.split(text) if s and s.strip()])


def _covers(text: str, stems: dict[str, float]) -> float:
    total = sum(stems.values())
    if total <= 0:
        return 1.0
    words = set(_WORD.findall(text.lower()))
    return sum(w for s, w in stems.items() if any(x.startswith(s) for x in words)) / total


def best_sentence(text: str, stems: dict[str, float] | TermCoverage) -> tuple[str, float]:
    """The sentence of post ``text`` that best covers the weighted term ``stems`` (or a
    :class:`~firesift.answer.understand.TermCoverage`), cleaned, and its coverage;
    ``("", 0.0)`` if none has four words."""
    best, best_score, best_cov = "", -1.0, 0.0
    for i, sentence in enumerate(split_sentences(clean_post_text(text))):
        if len(sentence.split()) < 4:
            continue
        cov = stems(sentence) if isinstance(stems, TermCoverage) else _covers(sentence, stems)
        score = cov + (0.15 if i == 0 else 0.0)
        if score > best_score:
            best, best_score, best_cov = sentence, score, cov
    if len(best) > MAX_SENTENCE_CHARS:
        best = best[: MAX_SENTENCE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return best, best_cov


def _when(dt: datetime, ref: datetime | None = None) -> str:
    if ref is not None and dt.date() == ref.date():
        return dt.strftime("%H:%M")
    return f"{dt.strftime('%H:%M')} on {dt.day} {dt.strftime('%b %Y')}"


def _stamp(dt: datetime) -> str:
    return f"{dt.strftime('%H:%M')} UTC on {dt.day} {dt.strftime('%b %Y')}"


def header(as_of: datetime, ev: Evidence) -> str:
    """``As of 16:00 UTC on 22 Oct 2014: 212 posts from 180 accounts, first seen 13:51.``"""
    when = _stamp(as_of)
    if not ev.posts:
        return f"As of {when}: no matching posts."
    posts = "1 post" if ev.posts == 1 else f"{ev.posts} posts"
    accounts = "1 account" if ev.accounts == 1 else f"{ev.accounts} accounts"
    first = f", first seen {_when(ev.first_seen, as_of)}" if ev.first_seen else ""
    return f"As of {when}: {posts} from {accounts}{first}."


@dataclass(slots=True)
class _Point:
    sentence: str
    words: set[str]
    items: list[EvidenceItem]
    coverage: float
    strong: bool = False
    """Retrieval ranked the post near the best hit (``STRONG_SCORE``): relevant evidence even
    when its sentence covers less than ``MIN_COVERAGE`` (a paraphrase, a name for a role)."""

    def relevant(self) -> bool:
        return self.coverage >= MIN_COVERAGE or self.strong

    def markers(self) -> str:
        return "".join(f"[{i.n}]" for i in self.items[:4])

    def cite(self, budget: _Budget) -> bool:
        """Keep only the items ``budget`` allows (at most four markers); ``False`` when none."""
        self.items = budget.take(self.items[:4]) + [i for i in self.items[4:] if i.n in budget.used]
        return bool(self.items)

    def line(self) -> str:
        body = self.sentence[:-1] if self.sentence.endswith(".") else self.sentence
        return f"{body} {self.markers()} {self.tag()}"

    def accounts(self) -> set[str]:
        return {i.post.author.id or i.author for i in self.items}

    def tag(self) -> str:
        n = len(self.accounts())
        return f"(one account: @{self.items[0].author})" if n == 1 else f"({n} accounts)"


@dataclass(slots=True)
class _Budget:
    """At most ``limit`` distinct posts cited (``Filters.max_results``), in text order."""

    limit: int
    used: set[int] = field(default_factory=set)

    def take(self, items: list[EvidenceItem]) -> list[EvidenceItem]:
        out = []
        for i in items:
            if i.n not in self.used and len(self.used) < self.limit:
                self.used.add(i.n)
            if i.n in self.used:
                out.append(i)
        return out


@dataclass(slots=True)
class _Story:
    key: str
    words: set[str]
    points: list[_Point] = field(default_factory=list)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _points(ctx: ComposeContext) -> list[_Story]:
    u = ctx.understanding
    stems = TermCoverage(u.terms, u.expansions)
    stories: list[_Story] = []
    points: list[_Point] = []
    top = max((i.score for i in ctx.pool.hits()), default=0.0)
    for item in ctx.pool.hits():
        sentence, cov = best_sentence(item.post.text, stems)
        if not sentence:
            continue
        words = set(content_words(sentence))
        same = next((p for p in points if _jaccard(words, p.words) >= SAME_POINT), None)
        if same is not None:
            same.items.append(item)
            continue
        if len(points) >= MAX_POINTS:
            continue
        strong = top > 0 and item.score >= STRONG_SCORE * top
        point = _Point(sentence, words, [item], cov, strong)
        points.append(point)
        key = item.story or f"thread:{item.post.conversation_id or item.post.id}"
        story = next((s for s in stories if s.key == key), None)
        if story is None and not item.story:
            story = next((s for s in stories if _jaccard(words, s.words) >= SAME_STORY), None)
        if story is None:
            story = _Story(key, set())
            stories.append(story)
        story.points.append(point)
        story.words |= words
    return stories


def _replies(ctx: ComposeContext, point: _Point, budget: _Budget) -> list[str]:
    lines = []
    for stance, label in (("deny", "Disputed in replies"), ("query", "Questioned in replies")):
        replies = [
            r
            for i in point.items
            for r in ctx.pool.replies(i.key)
            if r.stance == stance and r.confidence >= 0.5
        ]
        replies.sort(key=lambda r: -r.confidence)
        for r in budget.take(replies[:1]):
            sentence, _ = best_sentence(r.post.text, {})
            if sentence:
                lines.append(f"  {label}: “{sentence}” [{r.n}]")
    return lines


def _claim_lines(ctx: ComposeContext, verdict: Verdict, budget: _Budget) -> list[str]:
    parts = []
    for role, verb in (
        ("confirms", "confirmed by"),
        ("supports", "backed in replies by"),
        ("denies", "denied or corrected by"),
        ("questions", "questioned by"),
        ("reports", "repeated without confirmation by"),
    ):
        accounts = verdict.roles.get(role, {}).get("accounts", 0)
        if not accounts:
            continue
        shown = [e for e in verdict.evidence if e.role == role][:3]
        added = [
            ctx.pool.add(e.post, "claim", stance=e.stance, confidence=e.confidence) for e in shown
        ]
        items = budget.take([i for i in added if i is not None])
        marks = "".join(f"[{i.n}]" for i in items)
        unit = "account" if accounts == 1 else "accounts"
        parts.append(f"{verb} {accounts} {unit} {marks}".rstrip())
    label = verdict.verdict.replace("_", " ")
    detail = "; ".join(parts)
    return [f"Claim check: {label}." + (f" {detail[0].upper()}{detail[1:]}." if detail else "")]


def _body(ctx: ComposeContext) -> tuple[list[str], bool]:
    """The lines after the header (never none: a claim check, a headline or the "nothing
    answers this" line), and whether the answer is grounded."""
    lines: list[str] = []
    budget = _Budget(max(1, ctx.filters.max_results))
    if ctx.verdict is not None and ctx.verdict.verdict != "insufficient":
        budget.limit -= 1  # keep one citation for the answer itself
        lines += _claim_lines(ctx, ctx.verdict, budget)
        budget.limit += 1
    stories = _points(ctx)
    relevant = [p for s in stories for p in s.points if p.coverage >= MIN_COVERAGE]
    grounded = bool(relevant) or (bool(stories) and not ctx.understanding.terms)
    if not grounded:
        lines += ["", f"Nothing in the stream answers this as of {_stamp(ctx.as_of)}."]
        closest = [p for s in stories for p in s.points if p.cite(budget)][:2]
        if closest:
            lines.append("The closest posts:")
            lines += [f"- {p.line()}" for p in closest]
    else:
        stories = [s for s in stories if any(p.relevant() for p in s.points)] or stories
        if ctx.understanding.terms:
            for s in stories:
                s.points = [p for p in s.points if p.relevant()]
            stories = [s for s in stories if s.points]
        head = stories[0].points[0]
        head.cite(budget)
        lines += ["", head.line()]
        lines += _replies(ctx, head, budget)
        for i, story in enumerate(stories):
            rest = story.points[1:] if i == 0 else story.points
            rest = [p for p in rest if p.cite(budget)]
            if not rest:
                continue
            lines.append("")
            for p in rest:
                lines.append(f"- {p.line()}")
                lines += _replies(ctx, p, budget)
    return lines, grounded


class ExtractiveComposer(Composer):
    """Headline and points copied from the best posts, grouped by storyline (module docs)."""

    name = "extractive"
    description = "sentences copied from cited posts; no model needed"
    settles_late = True

    def compose(self, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        """The header line is streamed before anything else is done: it needs only the pool's
        statistics, so a reader sees the first words while reply stances are labelled, the
        claim is checked (``ctx.settle()``) and sentences are picked. Each line is one piece,
        the same pieces (and text) as composing everything first."""
        out = ctx.writer()
        first = out.feed(header(ctx.as_of, ctx.pool.stats()) + "\n")
        if first:
            yield AnswerDelta(first)
        ctx.settle()
        lines, grounded = _body(ctx)
        for n, line in enumerate(lines):
            delta = out.feed(line + ("\n" if n < len(lines) - 1 else ""))
            if delta:
                yield AnswerDelta(delta)
        tail = out.close()
        if tail:
            yield AnswerDelta(tail)
        yield AnswerDone(out.answer(grounded=grounded and bool(ctx.pool.hits())))


register_composer(ExtractiveComposer)
