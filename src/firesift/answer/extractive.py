"""The ``extractive`` composer: an answer made only of sentences copied from cited posts.

No model weights, no network: the default composer. Layout::

    As of 00:00 UTC on 23 Oct 2014: 41 posts from 32 accounts, first seen 13:46.
    Claim check: disputed. Denied or corrected by 2 accounts [4][5]; ...

    Canadian official identifies dead Ottawa gunman as Michael Zehaf-Bibeau [1][2][3][4]
    (6 accounts: 6 news organisations)
      Disputed in replies: "That's not him" [8]
    - Soldier shot dead in Ottawa attack identified as ... Nathan Cirillo [5][6] (2 accounts: ...)

    Conflicting reports on who the suspect is: “Michael Zehaf-Bibeau” (6 accounts) [1]
    against “Michael Joseph Hall” (2 accounts) [7].

    Single-account reports:
    - Police: a lockdown is in place at the Rideau Centre [9] (one account: @OttawaPolice)

Design decisions:

- **Never invent a sentence.** Every sentence after the header is a sentence of a cited post,
  cleaned of ``RT @x:``, links, ``@handles``, "BREAKING:" labels, trailing hashtag runs and
  anything shaped like a citation marker (:func:`firesift.answer.citations.strip_markers`).
  The only words firesift adds are the fixed frames: the header, "Claim check", "(one account:
  @x)" / "(N accounts: ...)", "Conflicting reports on ...", "Single-account reports",
  "Disputed in replies" / "Questioned in replies" and the "nothing in the stream answers this"
  line; the values a conflict names ("Michael Joseph Hall") are words of the posts.
- **Which sentence.** Each hit's sentences are scored by the question's weighted terms they
  cover (crude prefix stemming, paraphrases at a discount: see
  :class:`~firesift.answer.understand.TermCoverage`), with a small preference for the first
  sentence (the lede); sentences under four words are skipped.
- **Claims, most corroborated first.** The hits' sentences are grouped into claims
  (:mod:`firesift.answer.claims`: the same slot value or a paraphrase, by words or, when the
  context carries a sentence encoder, by embedding), each counted by distinct and independent
  accounts with their kinds. The claim with the most independent accounts leads, then the
  other claims several accounts back, then the conflicts between shown claims side by side,
  then the single-account reports under their own heading.
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

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from firesift.answer.claims import Claim, Conflict
from firesift.answer.composer import ComposeContext, Composer, register_composer
from firesift.answer.evidence import EvidenceItem
from firesift.answer.model import AnswerDelta, AnswerDone, AnswerEvent, Evidence, Verdict
from firesift.answer.sentences import best_sentence, clean_post_text, split_sentences

__all__ = [
    "ExtractiveComposer",
    "best_sentence",
    "clean_post_text",
    "header",
    "split_sentences",
]

MIN_COVERAGE = 0.34
STRONG_SCORE = 0.25
MAX_POINTS = 8


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


_KIND_WORDS = {
    "news": ("news organisation", "news organisations"),
    "official": ("official account", "official accounts"),
    "verified": ("verified", "verified"),
    "anonymous": ("anonymous", "anonymous"),
}


@dataclass(slots=True)
class _Point:
    """A claim as the answer shows it: its sentence's coverage of the question and whether
    retrieval ranked one of its posts near the best hit (``STRONG_SCORE``), which makes it
    relevant evidence even when its sentence covers less than ``MIN_COVERAGE`` (a
    paraphrase, a name for a role)."""

    claim: Claim
    coverage: float
    strong: bool = False
    items: list[EvidenceItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.items = list(self.claim.items)

    @property
    def sentence(self) -> str:
        return self.claim.sentence

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

    def tag(self) -> str:
        """``(one account: @x)`` or ``(7 accounts, 6 independent: 5 news organisations, 2
        anonymous)``; the kinds are of the accounts that posted (not of folded reposts)."""
        c = self.claim
        if c.accounts == 1:
            return f"(one account: @{c.items[0].author})"
        head = f"{c.accounts} accounts"
        if c.independent < c.accounts:
            head += f", {c.independent} independent"
        kinds = [
            f"{n} {_KIND_WORDS[k][n != 1]}" for k, n in c.kinds.items() if n and k in _KIND_WORDS
        ]
        return f"({head}: {', '.join(kinds)})" if kinds else f"({head})"


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


def _points(ctx: ComposeContext) -> tuple[list[_Point], list[Conflict]]:
    """The context's claims (:meth:`ComposeContext.claims`) as points, most independent
    accounts first, and the conflicts between them (indexes into the list)."""
    found = ctx.claims()
    top = max((i.score for i in ctx.pool.hits()), default=0.0)
    points = [
        _Point(
            c,
            max(found.coverage[i.n] for i in c.items),
            top > 0 and c.score >= STRONG_SCORE * top,
        )
        for c in found.claims
    ][:MAX_POINTS]
    return points, [x for x in found.conflicts if x.b < len(points)]


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


def _conflict_line(about: str, points: list[_Point], budget: _Budget) -> str | None:
    """``Conflicting reports on who the suspect is: “Michael Zehaf-Bibeau” (6 accounts) [1]
    against “Michael Joseph Hall” (2 accounts) [5].`` The values are words of the posts."""
    sides = []
    for p in points:
        slot = p.claim.slot
        marks = "".join(f"[{i.n}]" for i in budget.take(p.items[:1]))
        if slot is None or not marks:
            return None
        n = p.claim.accounts
        sides.append(f"“{slot.value}” ({n} account{'s' if n != 1 else ''}) {marks}")
    return f"Conflicting reports on {about}: {' against '.join(sides)}."


def _body(ctx: ComposeContext) -> tuple[list[str], bool]:
    """The lines after the header (never none: a claim check, a headline or the "nothing
    answers this" line), and whether the answer is grounded."""
    lines: list[str] = []
    budget = _Budget(max(1, ctx.filters.max_results))
    if ctx.verdict is not None and ctx.verdict.verdict != "insufficient":
        budget.limit -= 1  # keep one citation for the answer itself
        lines += _claim_lines(ctx, ctx.verdict, budget)
        budget.limit += 1
    points, found = _points(ctx)
    grounded = any(p.coverage >= MIN_COVERAGE for p in points) or (
        bool(points) and not ctx.understanding.terms
    )
    if not grounded:
        lines += ["", f"Nothing in the stream answers this as of {_stamp(ctx.as_of)}."]
        closest = [p for p in points if p.cite(budget)][:2]
        if closest:
            lines.append("The closest posts:")
            lines += [f"- {p.line()}" for p in closest]
        return lines, grounded
    shown = [p for p in points if p.relevant()] if ctx.understanding.terms else points
    shown = shown or points
    head, rest = shown[0], shown[1:]
    head.cite(budget)
    lines += ["", head.line()]
    lines += _replies(ctx, head, budget)
    several = [p for p in rest if p.claim.accounts > 1 and p.cite(budget)]
    for p in several:
        lines.append(f"- {p.line()}")
        lines += _replies(ctx, p, budget)
    index = {id(p.claim): k for k, p in enumerate(points)}
    on_show = {index[id(p.claim)] for p in shown}
    for c in found:
        if c.a in on_show and c.b in on_show:
            line = _conflict_line(c.about, [points[c.a], points[c.b]], budget)
            if line:
                lines += ["", line]
    single = [p for p in rest if p.claim.accounts == 1 and p.cite(budget)]
    if single:
        lines += ["", "Single-account reports:"]
        for p in single:
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
