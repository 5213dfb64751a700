"""Synthetic posts for load and benchmark volume only (never for tests of meaning or demos).

The shape follows the real corpus the project ships with (RumourEval 2017 + PHEME, 9,303 posts,
measured once with a script over the repository's ``data/``): text length p10/p50/p90 of 51/117/139
characters, 46% of posts with a hashtag (0.69 per post), 54% with a mention, 41% with a link,
45% replies, 15 tokens per post of which 43% of the words are function words ("the", "of",
"is", ...). Content words come from a deterministic pseudo-vocabulary with a Zipf law, as word
frequencies in real text do, so query selectivity behaves like a real index; function words are
drawn from the commonest English ones with their relative frequencies. Without them every pair
of adjacent words would be a phrase to the trend tracker: 28 trend terms per post instead of
the real corpus's 11.9 (measured with :func:`firesift.trends.extract`), which made the trends
benchmark count 2.4 times the real work; with them a synthetic post has 15.9 tokens and 13.5
trend terms (real: 15.1 and 11.9) and a median length of 99 characters (real: 117).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson

__all__ = ["SyntheticStream"]

_SYLLABLES = [
    c + v
    for c in ("b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr")
    for v in ("a", "e", "i", "o", "u", "ai", "ou")
]
TEXT_LEN_P = [(0.10, 51), (0.50, 117), (0.90, 139), (1.0, 200)]
HASHTAG_RATE = 0.46
MENTION_RATE = 0.54
LINK_RATE = 0.41
REPLY_RATE = 0.45
FUNCTION_WORD_RATE = 0.43
# The commonest English function words with rough relative frequencies (per 1,000 words of
# news and social text); only their ranking and rough shape matter here.
_FUNCTION_WORDS = {
    "the": 60,
    "to": 27,
    "of": 26,
    "a": 24,
    "and": 24,
    "in": 20,
    "is": 11,
    "for": 10,
    "on": 8,
    "that": 8,
    "it": 7,
    "at": 6,
    "with": 6,
    "this": 5,
    "be": 5,
    "are": 5,
    "was": 5,
    "i": 5,
    "you": 4,
    "from": 4,
    "by": 4,
    "has": 4,
    "have": 4,
    "not": 3,
    "as": 3,
    "after": 3,
    "we": 3,
    "they": 3,
    "he": 3,
    "will": 3,
    "an": 3,
    "his": 2,
    "but": 2,
    "all": 2,
    "were": 2,
    "so": 2,
    "what": 2,
    "now": 2,
    "been": 2,
    "their": 2,
    "about": 2,
    "more": 2,
    "who": 2,
    "out": 2,
    "just": 2,
    "up": 2,
    "my": 2,
    "there": 1,
}


class SyntheticStream:
    """A deterministic stream of canonical-JSONL posts (see :mod:`firesift.formats.canonical`)."""

    def __init__(
        self,
        *,
        seed: int = 7,
        vocabulary: int = 30_000,
        accounts: int = 50_000,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        rate_per_s: float = 5_700.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.words = self._vocabulary(vocabulary)
        self.tags = self.words[:2_000]
        self.accounts = accounts
        self.start_ms = int(start.timestamp() * 1000)
        self.step_ms = 1000.0 / rate_per_s
        weights = [1.0 / (r + 1) ** 1.07 for r in range(vocabulary)]
        self._cum = list(_accumulate(weights))
        self._function = list(_FUNCTION_WORDS)
        self._function_cum = list(_accumulate([float(v) for v in _FUNCTION_WORDS.values()]))
        self.n = 0

    def _vocabulary(self, size: int) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        rng = random.Random(1)
        while len(out) < size:
            word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
            if word not in seen:
                seen.add(word)
                out.append(word)
        return out

    def query_terms(self, k: int) -> list[str]:
        """``k`` words as a user might search: frequent enough to match, not stopword-frequent."""
        return [self.words[self.rng.randint(20, 3_000)] for _ in range(k)]

    def _length(self) -> int:
        u = self.rng.random()
        lo_p, lo = 0.0, 10
        for p, v in TEXT_LEN_P:
            if u <= p:
                return int(lo + (v - lo) * (u - lo_p) / (p - lo_p))
            lo_p, lo = p, v
        return 140

    def post(self) -> dict[str, object]:
        rng = self.rng
        self.n += 1
        pid = 10**17 + self.n
        target = self._length()
        parts: list[str] = []
        if rng.random() < MENTION_RATE:
            parts.append(f"@user{rng.randrange(self.accounts)}")
        size = sum(len(p) + 1 for p in parts)
        k = max(3, target // 7)
        words = rng.choices(self.words, cum_weights=self._cum, k=k)
        function = rng.choices(self._function, cum_weights=self._function_cum, k=k)
        for w, f in zip(words, function, strict=True):
            if size >= target:
                break
            if rng.random() < FUNCTION_WORD_RATE:
                w = f
            parts.append(w)
            size += len(w) + 1
        if rng.random() < HASHTAG_RATE:
            parts.append("#" + rng.choice(self.tags))
        if rng.random() < LINK_RATE:
            parts.append(f"https://example.org/{rng.randrange(10**6)}")
        author = rng.randrange(self.accounts)
        created = self.start_ms + int(self.n * self.step_ms)
        post: dict[str, object] = {
            "id": str(pid),
            "text": " ".join(parts),
            "created_at": datetime.fromtimestamp(created / 1000, tz=UTC).isoformat(),
            "author": {"id": str(author), "handle": f"user{author}"},
            "lang": "en",
            "metrics": {"likes": int(rng.paretovariate(1.5)) - 1, "reposts": rng.randrange(3)},
        }
        if rng.random() < REPLY_RATE and self.n > 1:
            post["reply_to"] = str(10**17 + rng.randrange(1, self.n))
        return post

    def lines(self, count: int) -> Iterator[bytes]:
        for _ in range(count):
            yield orjson.dumps(self.post()) + b"\n"


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total
