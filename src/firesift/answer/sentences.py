"""Sentences of posts as an answer may quote them: cleaned of links, handles, labels and
marker look-alikes, split into sentences, and the one that best covers a question picked.

Shared by the extractive composer (which copies these sentences) and the claim grouping
(:mod:`firesift.answer.claims`, which groups posts by the sentence that answers the question).
"""

from __future__ import annotations

import re

from firesift.answer.citations import strip_markers
from firesift.answer.understand import TermCoverage
from firesift.trends import clean_text

__all__ = ["best_sentence", "clean_post_text", "split_sentences"]

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
    text = _LABEL.sub("", _HASH.sub(r"\1", text))
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
