"""The wire-format interface and the registry every parser (built-in or plugin) joins.

A format answers two questions about one decoded JSON object: :meth:`Format.sniff` ("is this my
shape?") and :meth:`Format.parse` ("which events does it carry?"). The reader decodes lines and
documents, unwraps containers (arrays, recorded-cassette wrappers) and hands each object here.

Detection contract: a format's ``sniff`` answers ``True`` only for shapes it owns, so the sniffs
of registered formats are disjoint and may be tried in any order. The reader relies on that to
try the format of the previous line first (a stream is almost always one format) and fall back
to registration order only when that misses. Registration order is still meaningful for plugins
that overlap: the most specific formats come first and the permissive ``canonical`` last.

``parse`` returns an empty list for payloads of the format's shape that carry no posts (X tweet
counts, user objects, Bluesky follows), and raises :class:`~firesift.errors.ParseError` with a
reason for malformed ones; neither stops a stream.
"""

from __future__ import annotations

from typing import Any, Protocol

from firesift.errors import NotFound, UnknownFormat
from firesift.post import Event

__all__ = ["FORMATS", "Format", "detect", "get", "names", "register", "unregister"]


class Format(Protocol):
    """One wire format: a name, a cheap shape test and a parser into canonical events."""

    name: str

    def sniff(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` (a decoded JSON object) has this format's shape. Must be cheap: it
        runs per line, and must not claim shapes another registered format owns."""
        ...

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        """The events ``obj`` carries; ``[]`` when it is of this shape but holds no posts.
        Raises :class:`~firesift.errors.ParseError` on a malformed payload."""
        ...


FORMATS: dict[str, Format] = {}
"""Registered formats by name, in sniff order."""


def register(fmt: Format, *, replace: bool = False) -> Format:
    """Add ``fmt`` to the registry (after those already there) and return it.

    A name can only be taken once unless ``replace`` is set, so a plugin cannot silently shadow
    a built-in."""
    if not fmt.name or not isinstance(fmt.name, str):
        raise ValueError("a format needs a non-empty string name")
    if fmt.name in FORMATS and not replace:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    """Remove a format (plugins and tests); unknown names raise :class:`NotFound`."""
    get(name)
    del FORMATS[name]


def names() -> list[str]:
    """Registered format names in sniff order."""
    return list(FORMATS)


def get(name: str) -> Format:
    """The format registered as ``name``; the error lists the valid names."""
    try:
        return FORMATS[name]
    except KeyError:
        valid = ", ".join(FORMATS) or "(none registered)"
        raise NotFound(f"unknown format {name!r}; valid formats: {valid}") from None


def detect(obj: dict[str, Any], first: Format | None = None) -> Format:
    """The format whose ``sniff`` accepts ``obj``, trying ``first`` (e.g. the format of the
    previous line) before the registry order. Raises :class:`UnknownFormat`."""
    if first is not None and first.sniff(obj):
        return first
    for fmt in FORMATS.values():
        if fmt is not first and fmt.sniff(obj):
            return fmt
    raise UnknownFormat(f"no format recognises this object (keys: {_keys(obj)})")


def _keys(obj: dict[str, Any], limit: int = 8) -> str:
    keys = list(obj)
    shown = ", ".join(map(str, keys[:limit]))
    return shown + (f", ... ({len(keys)} keys)" if len(keys) > limit else "") if keys else "none"
