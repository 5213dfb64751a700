"""Claims: evidence posts grouped by what they assert, counted by independent account, with the
claims that contradict each other paired up.

A claim is one sentence (the best-ranked post's) and every post that says the same thing in any
wording. Design decisions:

- **Slots first.** Many breaking-news claims fill a slot: who someone is ("gunman identified
  as Michael Zehaf-Bibeau", "Canada identifies ... Michael Zehaf-Bibeau as suspected shooter"),
  how many of something there are ("a lone gunman", "several gunmen"), how many died. A post's
  slot is read from its wording (:func:`read_slot`): a kind (``identity``, ``count``, ``toll``),
  a subject (the role the name fills: perpetrator or victim; the counted noun) and a value (the
  name, ``one`` / ``several``, the number). Posts filling the same slot with the same value are
  one claim whatever their other words; the same slot with different values is a **conflict**.
- **Otherwise paraphrase.** Posts without a slot join a claim when their content words overlap
  by Jaccard >= ``SAME_CLAIM`` (after crude stemming and folding role synonyms: gunman, shooter,
  attacker, suspect are one word), or, when a sentence encoder is given
  (:mod:`firesift.semantic`), when their embeddings' cosine is >= ``SAME_CLAIM_COSINE``.
- **Independent accounts.** A claim counts distinct accounts, and separately *independent*
  ones: reposts, quotes of the same post and copy-paste (the same cleaned text) collapse to one
  origin. Account kinds (news, official, verified, anonymous) come from
  :mod:`firesift.answer.accounts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from firesift.answer.accounts import kind_counts
from firesift.answer.evidence import EvidenceItem, EvidencePool
from firesift.answer.sentences import best_sentence
from firesift.answer.understand import TermCoverage, Understanding, content_words
from firesift.post import Author

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "SAME_CLAIM",
    "SAME_CLAIM_COSINE",
    "Claim",
    "Claims",
    "Conflict",
    "Encode",
    "Slot",
    "conflicts",
    "group_claims",
    "pool_claims",
    "read_slot",
]

SAME_CLAIM = 0.45
SAME_CLAIM_COSINE = 0.75

Encode = Callable[[Sequence[str]], "npt.NDArray[np.float32]"]
"""Texts to L2-normalised sentence vectors, one row per text."""

SlotKind = Literal["identity", "count", "toll"]

_PERPETRATOR = {
    "gunman", "gunmen", "shooter", "shooters", "attacker", "attackers", "suspect",
    "suspects", "assailant", "killer", "bomber", "bombers", "terrorist", "terrorists",
    "hijacker", "hostage-taker", "perpetrator", "co-pilot", "copilot",
}  # fmt: skip
_VICTIM = {
    "soldier", "soldiers", "victim", "victims", "guard", "reservist",
    "hostage", "hostages", "passenger", "passengers", "corporal",
}  # fmt: skip
_OFFICER = {"officer", "officers", "cop", "cops", "policeman", "policemen", "constable"}
_ROLE_OF = (
    {w: "perpetrator" for w in _PERPETRATOR}
    | {w: "victim" for w in _VICTIM}
    | {w: "officer" for w in _OFFICER}
)

_TITLE = r"(?:(?:Cpl|Sgt|Lt|Col|Gen|Capt|Maj|Dr|Mr|Mrs|Ms|Prof|Const|Det|Insp)\.?\s+)?"
_CAP = r"[A-Z][\w'’]*(?:-[A-Z]?[\w'’]+)*"
_NAME = rf"{_TITLE}({_CAP}(?:\s+{_CAP}){{1,3}})"
_IDENTIFY = r"(?i:identif(?:y|ies|ied|ying)|named?|names|ID'?d)"
_NOT_AFTER = "".join(rf"(?<!\b{w}\s)" for w in ("at", "in", "on", "of", "by", "to", "from"))
_AS_AFTER_VERB = re.compile(
    rf"\b{_IDENTIFY}\b(?:[^.;:!?]{{0,60}}?)\bas\s+(?:[\w-]+\s+){{0,2}}?{_NOT_AFTER}{_NAME}"
)
_AFTER_VERB = re.compile(rf"\b{_IDENTIFY}\b(?:[^.;:!?]{{0,60}}?)\b{_NOT_AFTER}{_NAME}")
_BEFORE_VERB = re.compile(rf"{_NAME},?(?:\s+\d+,)?\s+(?:has\s+been|was|is)\s+{_IDENTIFY}")

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12,
}  # fmt: skip
_TOLL = re.compile(
    r"\b(\d{1,5}|" + "|".join(_NUMBER_WORDS) + r")\s+(?:people\s+|persons\s+|are\s+|were\s+)?"
    r"(dead|killed|died|deaths|injured|wounded|hurt|hostages)\b",
    re.IGNORECASE,
)
_TOLL_NOUN = {
    "dead": "dead", "killed": "dead", "died": "dead", "deaths": "dead",
    "injured": "injured", "wounded": "injured", "hurt": "injured", "hostages": "hostages",
}  # fmt: skip
_MANY = r"(?:second|two|several|numerous|multiple|more|other|another|additional)"
_ONE = r"(?:lone|single|sole|only\s+one|just\s+one|one)"
_COUNT = re.compile(
    rf"\b(?:({_MANY})|({_ONE}))\s+(?:\w+\s+)?(gunm[ae]n|shooters?|attackers?|suspects?|"
    r"bombers?|hijackers?|terrorists?)\b",
    re.IGNORECASE,
)
_NOT_A_NAME = {"the", "a", "an", "this", "that", "breaking", "update", "police", "officials"}


@dataclass(frozen=True, slots=True)
class Slot:
    """What a claim fills: ``kind`` (identity, count, toll), ``subject`` (``perpetrator``,
    ``victim`` or ``officer`` for a name, the counted noun, ``dead`` / ``injured`` /
    ``hostages``) and the ``value`` (a name, ``one`` / ``several``, a number as text)."""

    kind: SlotKind
    subject: str
    value: str

    def about(self) -> str:
        """What two different values of this slot disagree on, in a reader's words."""
        if self.kind == "identity":
            who = {"perpetrator": "suspect", "victim": "victim", "officer": "officer"}
            return f"who the {who[self.subject]} is"
        if self.kind == "count":
            return f"how many {self.subject}s there are"
        return {
            "dead": "how many people died",
            "injured": "how many people were hurt",
            "hostages": "how many hostages there are",
        }[self.subject]

    def same_value(self, other: Slot) -> bool:
        if self.kind != "identity":
            return self.value == other.value
        a, b = self.value.lower().split(), other.value.lower().split()
        return a[-1] == b[-1] or set(a) <= set(b) or set(b) <= set(a)


def _role(text: str) -> str | None:
    text = re.sub(r"hostage[\s-]+taker", "hostage-taker", text.lower())
    for word in re.findall(r"[\w-]+", text):
        role = _ROLE_OF.get(word)
        if role:
            return role
    return None


def _count_noun(word: str) -> str:
    word = word.lower()
    if word.startswith("gunm"):
        return "gunman"
    return word[:-1] if word.endswith("s") else word


def read_slot(sentence: str) -> Slot | None:
    """The slot ``sentence`` fills, or None (module docstring)."""
    role = _role(sentence)
    if role is not None:
        for pattern in (_AS_AFTER_VERB, _AFTER_VERB, _BEFORE_VERB):
            m = pattern.search(sentence)
            if m and m.group(1).split()[0].lower() not in _NOT_A_NAME:
                return Slot("identity", role, m.group(1))
    m = _COUNT.search(sentence)
    if m:
        return Slot("count", _count_noun(m.group(3)), "several" if m.group(1) else "one")
    m = _TOLL.search(sentence)
    if m:
        number = m.group(1).lower()
        value = str(_NUMBER_WORDS.get(number, number))
        return Slot("toll", _TOLL_NOUN[m.group(2).lower()], value)
    return None


def _words(sentence: str) -> frozenset[str]:
    out = set()
    for w in content_words(sentence):
        role = _ROLE_OF.get(w)
        out.add(role if role else w[: max(4, len(w) - 2)])
    return frozenset(out)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _fingerprint(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", re.sub(r"https?://\S+|@\w+|^rt\s", "", text.lower())))


@dataclass(slots=True)
class Claim:
    """Posts asserting one thing; ``items`` in rank order (the first gives ``sentence``)."""

    sentence: str
    items: list[EvidenceItem]
    slot: Slot | None = None
    words: frozenset[str] = frozenset()
    vector: npt.NDArray[np.float32] | None = None
    folded: set[str] = field(default_factory=set)
    """Accounts (ids) of reposts and copies retrieval folded into the items: they count as
    accounts, never as independent ones."""

    def authors(self) -> list[Author]:
        return [i.post.author for i in self.items]

    @property
    def accounts(self) -> int:
        return len({a.id or a.handle for a in self.authors()} | self.folded)

    @property
    def independent(self) -> int:
        """Accounts that said it first-hand: an account whose every post here repeats an
        origin another account posted earlier (a repost, a quote of the same post, the same
        text copied) does not count."""
        text_of = {i.key: _fingerprint(i.post.text) or i.key for i in self.items}
        first: dict[str, str] = {}
        for i in sorted(self.items, key=lambda i: i.post.created_at):
            p = i.post
            ref = p.repost_of or p.quote_of
            origin = text_of.get(ref, ref) if ref else text_of[p.key]
            first.setdefault(origin, p.author.id or p.author.handle)
        return len(set(first.values()))

    @property
    def kinds(self) -> dict[str, int]:
        """Account kinds of the posts' authors (folded reposts are not classified)."""
        return kind_counts(self.authors())

    @property
    def first_seen(self) -> datetime:
        return min(i.post.created_at for i in self.items)

    @property
    def score(self) -> float:
        return max(i.score for i in self.items)


@dataclass(frozen=True, slots=True)
class Conflict:
    """Claims ``a`` and ``b`` (indexes into the claim list) fill the same slot differently."""

    about: str
    a: int
    b: int


def _same_slot(claim: Claim, slot: Slot | None) -> bool:
    c = claim.slot
    return (
        slot is not None
        and c is not None
        and (slot.kind, slot.subject) == (c.kind, c.subject)
        and slot.same_value(c)
    )


def _joins(
    claim: Claim, words: frozenset[str], slot: Slot | None, vec: npt.NDArray[np.float32] | None
) -> bool:
    if slot is not None and claim.slot is not None:
        same_slot = slot.kind == claim.slot.kind and slot.subject == claim.slot.subject
        if same_slot:
            return slot.same_value(claim.slot)
    if (
        vec is not None
        and claim.vector is not None
        and float(vec @ claim.vector) >= SAME_CLAIM_COSINE
    ):
        return True
    return _jaccard(words, claim.words) >= SAME_CLAIM


def group_claims(
    items: Sequence[EvidenceItem],
    sentences: Sequence[str],
    *,
    encode: Encode | None = None,
    folded: Callable[[EvidenceItem], set[str]] | None = None,
) -> list[Claim]:
    """Group ``items`` (rank order) by what their ``sentences`` assert; claims come out most
    independent accounts first (ties: best rank). Empty sentences are skipped. ``encode``
    adds paraphrase by embedding; ``folded`` gives the authors of reposts and copies an item
    stands for (account ids)."""
    pairs = [(i, s) for i, s in zip(items, sentences, strict=True) if s]
    vectors = encode([s for _, s in pairs]) if encode is not None and pairs else None
    claims: list[Claim] = []
    for n, (item, sentence) in enumerate(pairs):
        words, slot = _words(sentence), read_slot(sentence)
        vec = vectors[n] if vectors is not None else None
        claim = next((c for c in claims if _same_slot(c, slot)), None) or next(
            (c for c in claims if _joins(c, words, slot, vec)), None
        )
        if claim is None:
            claim = Claim(sentence, [], slot, words, vec)
            claims.append(claim)
        claim.items.append(item)
        if folded is not None:
            claim.folded |= folded(item)
    order = {id(c): k for k, c in enumerate(claims)}
    claims.sort(key=lambda c: (-c.independent, -c.accounts, order[id(c)]))
    return claims


def _denies(claim: Claim, rival: Slot) -> bool:
    """Some post of ``claim`` leaves out the ``rival`` value altogether ("also known as
    Michael Zehaf-Bibeau" or "the pilot X with co-pilot Y" name both and contradict nothing)."""
    if rival.kind != "identity":
        return True
    last = rival.value.split()[-1].lower()
    return any(last not in i.post.text.lower() for i in claim.items)


def conflicts(claims: Sequence[Claim]) -> list[Conflict]:
    """Pairs of claims filling the same slot with different values, in claim order; for
    names, each claim must have a post that does not mention the other's name."""
    out = []
    for a, ca in enumerate(claims):
        for b in range(a + 1, len(claims)):
            sa, sb = ca.slot, claims[b].slot
            if sa is None or sb is None or (sa.kind, sa.subject) != (sb.kind, sb.subject):
                continue
            if not sa.same_value(sb) and _denies(ca, sb) and _denies(claims[b], sa):
                out.append(Conflict(sa.about(), a, b))
    return out


@dataclass(frozen=True, slots=True)
class Claims:
    """The claims of an evidence pool's hits, their conflicts, and how much of the question
    each hit's chosen sentence covers (by item number)."""

    claims: list[Claim]
    conflicts: list[Conflict]
    coverage: dict[int, float]


def pool_claims(
    pool: EvidencePool, understanding: Understanding, *, encode: Encode | None = None
) -> Claims:
    """Group the pool's hits by the sentence of each that best answers the question."""
    u = understanding
    stems = TermCoverage(u.terms, u.expansions)
    hits = pool.hits()
    picked = [best_sentence(i.post.text, stems) for i in hits]
    claims = group_claims(hits, [s for s, _ in picked], encode=encode, folded=pool.folded_accounts)
    coverage = {i.n: cov for i, (_, cov) in zip(hits, picked, strict=True)}
    return Claims(claims, conflicts(claims), coverage)
