"""Text normalisation shared by the index (what gets indexed) and ranking (what counts as "the
same post").

Two different questions are answered here, on purpose with different rules:

- **Near-duplicate identity** (:func:`dup_text`, :func:`dup_fingerprint`): two posts are the
  same if they say the same words once the decoration a stream adds is removed: case, links
  (shorteners make every copy's URL differ), ``@handles`` (the same copypasta aimed at different
  people), a leading ``RT @x:`` (manual retweets), punctuation, ``#`` signs and spacing. The
  fingerprint is the first 8 bytes of BLAKE2b of that text as an unsigned 64-bit integer, so it
  fits a tantivy ``u64`` fast field and is stable across processes and Python versions (unlike
  ``hash()``). ``0`` is reserved for "nothing left to compare" (a post that is only a link or
  only mentions): such posts never collapse onto each other.
- **Field values** (:func:`handle_key`, :func:`tag_key`, :func:`url_domains`,
  :func:`lang_keys`, :func:`leading_mentions`): the exact terms stored in the index's raw
  fields and produced by the query side, so that ``from:Alice`` and a post by ``alice`` meet
  on one spelling.
- **Content words** (:func:`content_words`): the lowercase words a post says, without links,
  ``@handles``, one-letter tokens and the caller's stopwords, for the word statistics above the
  index (bursts in search and answers, answer retrieval's coverage and feedback).

Nothing here depends on tantivy; word tokenisation for full text is the index's analyser.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = [
    "content_words",
    "dup_fingerprint",
    "dup_text",
    "extract_hashtags",
    "extract_mentions",
    "extract_urls",
    "handle_key",
    "lang_keys",
    "leading_mentions",
    "tag_key",
    "token_set",
    "url_domains",
    "url_host",
]

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@([\w](?:[\w.-]*[\w])?)", re.UNICODE)
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)", re.UNICODE)
_LEADING_RT = re.compile(r"^\s*(?:RT\s+@[\w.-]+\s*:?\s*)+", re.IGNORECASE)
_LEADING_MENTIONS = re.compile(r"^\s*((?:@[\w.-]+\s*)+)")
_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_HOST = re.compile(r"^[\w-]+(?:\.[\w-]+)*$", re.UNICODE)
_RT = (b"rt ", b"RT ", b"Rt ", b"rT ")
_LEADING_RT_B = re.compile(rb"^(?:RT\s+@\S+\s*)+", re.IGNORECASE)
_DECORATION_B = re.compile(rb"(?<!\S)(?:@|https?://|www\.)\S*", re.IGNORECASE)
_ASCII_FOLD = bytes(
    c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() or chr(c).isspace() else 32
    for c in range(256)
)


def dup_text(text: str) -> str:
    """The text two near-duplicate posts share: lowercased, without links, ``@handles``, a leading
    ``RT @x:``, punctuation (``#`` included) and repeated whitespace."""
    if text.isascii():
        return _dup_ascii(text).decode("ascii")
    return _dup_text_unicode(text)


def _dup_ascii(text: str) -> bytes:
    return b" ".join(_folded_ascii(text).split())


def _folded_ascii(text: str) -> bytes:
    """ASCII ``text`` without a leading ``RT @x:``, links and ``@handles``, lowercased, every
    other character that is not a letter or digit made a space (spacing left as it is)."""
    raw = text.encode("ascii")
    if raw[:3] in _RT:
        raw = _LEADING_RT_B.sub(b"", raw)
    if b"@" in raw or b"://" in raw or b"www." in raw or b"WWW." in raw:
        raw = _DECORATION_B.sub(b" ", raw)
    return raw.translate(_ASCII_FOLD)


def _dup_text_unicode(text: str) -> str:
    text = _LEADING_RT.sub("", text)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def dup_fingerprint(text: str) -> int:
    """A 64-bit fingerprint of :func:`dup_text`; ``0`` when nothing is left to compare."""
    norm = _dup_ascii(text) if text.isascii() else _dup_text_unicode(text).encode("utf-8")
    if not norm:
        return 0
    return int.from_bytes(hashlib.blake2b(norm, digest_size=8).digest(), "big") or 1


def token_set(text: str) -> frozenset[str]:
    """The distinct words of :func:`dup_text`, for Jaccard similarity between near-duplicates.

    :func:`dup_text` leaves only word characters and whitespace, so its words are what
    ``str.split`` gives (both use Python's definition of whitespace), without a regex; ranking
    calls this for a hundred candidates per search."""
    if text.isascii():
        return frozenset(_folded_ascii(text).decode("ascii").split())
    return frozenset(_dup_text_unicode(text).split())


def handle_key(handle: str) -> str:
    """An account handle as the index stores it: no leading ``@``, casefolded."""
    return handle.strip().lstrip("@").casefold()


def tag_key(tag: str) -> str:
    """A hashtag as the index stores it: no leading ``#``, NFKC, casefolded."""
    tag = tag.strip().lstrip("#")
    if tag.isascii():  # NFKC leaves ASCII alone, and casefold is lower there
        return tag.lower()
    return unicodedata.normalize("NFKC", tag).casefold()


def extract_hashtags(text: str) -> list[str]:
    """Hashtags written in ``text`` (as :func:`tag_key` values), for sources that do not list
    them separately."""
    return [tag_key(m) for m in _HASHTAG.findall(text)] if "#" in text else []


def extract_mentions(text: str) -> list[str]:
    """``@handles`` written in ``text`` (as :func:`handle_key` values)."""
    return [handle_key(m) for m in _MENTION.findall(text)] if "@" in text else []


def extract_urls(text: str) -> list[str]:
    """Links written in ``text`` (``http(s)://`` or ``www.``), for sources that do not list them."""
    return [u.rstrip(".,;:!?)]}'\"") for u in _URL.findall(text)]


def leading_mentions(text: str) -> list[str]:
    """The ``@handles`` a reply starts with: who it is addressed to on X-like sources."""
    text = _LEADING_RT.sub("", text) if text.lstrip().upper().startswith("RT ") else text
    m = _LEADING_MENTIONS.match(text)
    return extract_mentions(m.group(1)) if m else []


def url_host(url: str) -> str:
    """The host of ``url`` (scheme optional), lowercased, without ``www.``, user or port; ``""``
    if there is none."""
    rest = url.strip().partition("://")
    host = (rest[2] if rest[1] else rest[0]).split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = host.rpartition("@")[2].partition(":")[0].rstrip(".").lower()
    if not _HOST.match(host):
        return ""
    return host[4:] if host.startswith("www.") else host


def url_domains(url: str) -> list[str]:
    """Every term ``url:`` can match for ``url``: the host, each parent domain and each label
    (``news.bbc.co.uk`` gives ``news.bbc.co.uk``, ``bbc.co.uk``, ``co.uk``, ``uk``, ``news``,
    ``bbc``, ``co``), so both ``url:bbc.co.uk`` and ``url:bbc`` work as on X."""
    host = url_host(url)
    if not host:
        return []
    labels = host.split(".")
    suffixes = [".".join(labels[i:]) for i in range(len(labels))]
    return list(dict.fromkeys(suffixes + labels))


def lang_keys(lang: str | None) -> list[str]:
    """Terms for a language tag: the tag and its primary subtag (``pt-BR`` gives ``pt-br`` and
    ``pt``), so ``lang:pt`` finds both. An empty tag gives none."""
    tag = (lang or "").strip().replace("_", "-").lower()
    if not tag:
        return []
    primary = tag.split("-", 1)[0]
    return [tag] if primary == tag else [tag, primary]


_CONTENT_LINK = re.compile(r"https?://\S+|www\.\S+")
_CONTENT_HANDLE = re.compile(r"(?<![\w@])@([A-Za-z0-9_](?:[\w.-]*\w)?)")
_CONTENT_WORD = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)


def content_words(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    """Lowercase words of ``text`` that carry meaning (words in ``stop``, links, handles and
    one-letter tokens removed; a trailing ``'s`` dropped), in order, without repeats."""
    text = _CONTENT_LINK.sub(" ", text)
    text = _CONTENT_HANDLE.sub(" ", text)
    out: dict[str, None] = {}
    for word in _CONTENT_WORD.findall(text.lower()):
        w = word.strip("'’-").replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        if len(w) < 2 or w in stop:
            continue
        out[w] = None
    return list(out)
