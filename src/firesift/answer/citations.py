"""Citation markers: the check every composer's text passes before a reader sees it.

A composer writes ``[n]`` where ``n`` is the number of an evidence item it was given
(:class:`~firesift.answer.evidence.EvidencePool` numbers them 1..N). :class:`MarkerFilter`
rewrites that text, incrementally, so it can sit in a token stream:

- a marker whose number is not in the evidence is **removed** (with the space before it) and
  recorded in :attr:`MarkerFilter.dropped`: a model cannot cite a post it was not shown; when
  a kept marker follows directly (``"shots [12][1]"``), that space goes before the kept one
  (``"shots [1]"``);
- kept markers are **renumbered 1..k in order of first appearance**, so the answer's ``[1]`` is
  its first citation and ``Answer.citations`` lists them in that order;
- ``[3, 5]`` and ``[3,5]`` become ``[a][b]``; an immediate repeat (``[2][2]``) is written once;
- with a ``limit`` (the caller's ``max_results``), markers of a post beyond the first ``limit``
  distinct ones are removed like invalid ones and recorded in :attr:`MarkerFilter.capped`.

Because renumbering depends only on what came before, filtering chunk by chunk gives exactly
the text filtering the whole would: streamed deltas concatenate to the final ``Answer.text``.
A chunk boundary can fall inside a marker, so a possible partial marker (``"[1"``) and trailing
spaces are held back until the next chunk or :meth:`MarkerFilter.close`.

:func:`uncited_sentences` flags sentences that carry no marker (the LLM composer reports them as
warnings); header lines such as "As of ..." are skipped. Post text copied into an answer must go
through :func:`strip_markers` first, so that a post containing "[2]" cannot forge a citation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "MARKER",
    "CheckedText",
    "MarkerFilter",
    "check_markers",
    "markers",
    "strip_markers",
    "uncited_sentences",
]

MARKER = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")
"""``[3]`` or ``[3, 5]``; group 1 is the comma-separated numbers."""
_PARTIAL = re.compile(r"\[[\d,\s]{0,24}")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+(?:\s*\[\d+\])*|\n|$)")
_MIN_SENTENCE_WORDS = 4


def markers(text: str) -> list[int]:
    """Every number cited in ``text``, in order, repeats included."""
    return [int(n) for m in MARKER.finditer(text) for n in m.group(1).split(",")]


def strip_markers(text: str) -> str:
    """``text`` without anything shaped like a marker (for copying untrusted post text)."""
    return " ".join(MARKER.sub(" ", text).split())


@dataclass(slots=True)
class MarkerFilter:
    """Rewrites composer text chunk by chunk (see the module docstring).

    ``valid(n)`` says whether evidence number ``n`` exists. After :meth:`close`, ``cited``
    lists the evidence numbers kept, in citation order (``cited[0]`` became ``[1]``). ``limit``
    caps how many distinct posts may be cited; ``capped`` lists the numbers removed for it.
    """

    valid: Callable[[int], bool]
    limit: int | None = None
    cited: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    capped: list[int] = field(default_factory=list)
    _new: dict[int, int] = field(default_factory=dict)
    _pending: str = ""
    _gap: str = ""
    """Whitespace removed with a dropped marker, restored if a kept marker follows it."""
    _last: int | None = None
    _closed: bool = False

    def feed(self, chunk: str) -> str:
        """Filter ``chunk``; returns the text that is final now (possibly empty)."""
        if self._closed:
            raise ValueError("MarkerFilter.feed after close")
        self._pending += chunk
        return self._drain(final=False)

    def close(self) -> str:
        """The rest of the text; no more input after this."""
        out = self._drain(final=True)
        self._closed = True
        return out

    def _number(self, n: int) -> int | None:
        if not self.valid(n):
            self.dropped.append(n)
            return None
        if n not in self._new:
            if self.limit is not None and len(self._new) >= self.limit:
                self.capped.append(n)
                return None
            self._new[n] = len(self._new) + 1
            self.cited.append(n)
        return self._new[n]

    def _drain(self, *, final: bool) -> str:
        text = self._pending
        out: list[str] = []
        pos = 0
        for m in MARKER.finditer(text):
            seg = text[pos : m.start()]
            if seg:
                self._last = None
            kept: list[int] = []
            for raw in m.group(1).split(","):
                k = self._number(int(raw))
                if k is not None and k != (kept[-1] if kept else self._last):
                    kept.append(k)
            if kept:
                out.append((seg or self._gap) + "".join(f"[{k}]" for k in kept))
                self._last = kept[-1]
                self._gap = ""
            else:
                body = seg.rstrip(" \t")
                out.append(body)
                if seg:
                    self._gap = seg[len(body) :]
            pos = m.end()
        rest = text[pos:]
        if final:
            out.append(rest)
            self._pending = ""
            self._gap = ""
        else:
            cut = len(rest)
            i = rest.rfind("[")
            if i >= 0 and _PARTIAL.fullmatch(rest[i:]):
                cut = i
            j = cut
            while j > 0 and rest[j - 1] in " \t":
                j -= 1
            out.append(rest[:j])
            if j:
                self._gap = ""
            self._pending = rest[j:]
        if rest:
            self._last = None
        return "".join(out)


@dataclass(frozen=True, slots=True)
class CheckedText:
    """The result of :func:`check_markers`."""

    text: str
    cited: tuple[int, ...]
    dropped: tuple[int, ...]
    uncited: tuple[str, ...]


def check_markers(
    text: str, valid: Callable[[int], bool] | Iterable[int], *, skip: tuple[str, ...] = ()
) -> CheckedText:
    """Filter a whole text at once: ``valid`` is a predicate or the valid numbers."""
    if not callable(valid):
        allowed = frozenset(valid)
        valid = allowed.__contains__
    f = MarkerFilter(valid)
    out = f.feed(text) + f.close()
    return CheckedText(out, tuple(f.cited), tuple(f.dropped), tuple(uncited_sentences(out, skip)))


def uncited_sentences(text: str, skip: tuple[str, ...] = ("As of ",)) -> list[str]:
    """Sentences of at least four words with no ``[n]`` marker, excluding lines that start
    with one of ``skip`` (headers) and sentences ending in ":" (they introduce a list)."""
    out: list[str] = []
    for line in text.splitlines():
        body = line.strip().lstrip("-•*").strip()
        if not body or any(body.startswith(s) for s in skip):
            continue
        for m in _SENTENCE.finditer(body):
            sentence = m.group(0).strip()
            if (
                len(sentence.split()) >= _MIN_SENTENCE_WORDS
                and not MARKER.search(sentence)
                and not sentence.endswith(":")
            ):
                out.append(sentence)
    return out
