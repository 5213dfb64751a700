"""Read a file or stream of payloads into events, one result per line, never stopping early.

:func:`read` yields a :class:`Parsed` (the events of one line, possibly none) or a
:class:`Problem` (why that line was skipped) for every line that is not blank, so a caller can
count, log and carry on. ``where`` is ``"<name>:<line>"``; items of a JSON array add their
index (``"timeline.json:1[3]"``).

Decisions:

- Input is JSONL. Blank and whitespace-only lines (X's ``\\r\\n`` keep-alives) are skipped
  silently. A line that is not UTF-8, not JSON, longer than :data:`MAX_LINE_BYTES`, of no
  registered shape, or rejected by its parser becomes a ``Problem``; the lines around it are
  unaffected (e.g. the truncated last line of a killed stream capture).
- Lines are split from fixed-size reads rather than ``readline``: an over-long line is counted
  and discarded as it streams past, so memory stays bounded by the limit whatever the input.
  ``read1`` is used where the stream has it, so a live pipe yields each line as it arrives
  instead of waiting for a full buffer.
- Whole documents: if the first non-blank line is not JSON by itself but looks like the start
  of a pretty-printed document (it ends in ``{``, ``[``, ``,`` or ``:``), the input is read as
  one JSON document (up to :data:`MAX_DOCUMENT_BYTES`). If that fails too, the buffered lines
  are replayed as JSONL, so a damaged first line costs one ``Problem``, not the file.
- Containers are unwrapped before detection: a JSON array yields each element, and a recorded
  HTTP cassette ``{"request", "response_status", "body"}`` yields its body (an object, an array,
  or JSON text).
- Detection is per object and tries the format of the previous object first (sniffs are
  disjoint, see :mod:`firesift.formats.base`), so a homogeneous stream costs one sniff per line.
  ``fmt`` other than ``"auto"`` skips detection and applies that parser to every object.
- Parsers raise :class:`~firesift.errors.ParseError` for shapes they check. A payload that
  breaks a parser some other way (a ``TypeError`` deep inside an odd object) is also reported
  as a ``Problem`` naming the format, because one bad post must not end a live stream.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from firesift.errors import NotFound, ParseError, UnknownFormat
from firesift.formats.base import Format, detect, get
from firesift.post import Event

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_LINE_BYTES", "Messages", "Parsed", "Problem", "read"]

MAX_LINE_BYTES = 1_048_576
"""Longest accepted JSONL line (1 MiB); X posts are a few KB even with every expansion."""

MAX_DOCUMENT_BYTES = 64 * MAX_LINE_BYTES
"""Largest whole (non-JSONL) JSON document read into memory."""

_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"
_DOCUMENT_START = (b"{", b"[", b",", b":")
_PARSER_BUGS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


@dataclass(frozen=True, slots=True)
class Parsed:
    """The events one line (or array item) carried; empty for payloads without posts."""

    where: str
    events: list[Event]


@dataclass(frozen=True, slots=True)
class Problem:
    """A line (or array item) that was skipped, and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def read(
    source: str | Path | BinaryIO, *, fmt: str = "auto", name: str | None = None
) -> Iterator[Parsed | Problem]:
    """Parse ``source`` (a path, ``"-"`` for stdin, or a binary stream) line by line.

    ``fmt`` names a registered format to use for every line instead of detecting; ``name``
    labels ``where`` (default: the path, or the stream's name). An unknown ``fmt`` raises
    :class:`~firesift.errors.NotFound` listing the valid names; a missing file raises it too.
    A stream passed in is read but not closed."""
    forced = None if fmt == "auto" else get(fmt)
    opener: Callable[[], AbstractContextManager[BinaryIO]]
    if isinstance(source, str | Path):
        if str(source) == "-":
            stdin = sys.stdin.buffer
            label = name or "<stdin>"
            opener = lambda: nullcontext(stdin)  # noqa: E731
        else:
            path = Path(source)
            if not path.is_file():
                raise NotFound(f"no such file: {source}")
            label = name or str(source)
            opener = lambda: path.open("rb")  # noqa: E731
    else:
        stream = source
        stream_name = getattr(stream, "name", None)
        label = name or (stream_name if isinstance(stream_name, str) else "<stream>")
        opener = lambda: nullcontext(stream)  # noqa: E731
    return _read(opener, label, _Dispatcher(forced))


def _read(
    opener: Callable[[], AbstractContextManager[BinaryIO]], label: str, dispatch: _Dispatcher
) -> Iterator[Parsed | Problem]:
    with opener() as stream:
        lines = _lines(stream)
        started = False
        for lineno, line in lines:
            if line is None:
                yield Problem(f"{label}:{lineno}", f"line is longer than {MAX_LINE_BYTES} bytes")
                continue
            if not started:
                if line.startswith(_BOM):
                    line = line[len(_BOM) :]
                if not line or line.isspace():
                    continue
                started = True
                if line.rstrip().endswith(_DOCUMENT_START) and not _is_json(line):
                    document, replay = _collect_document(lineno, line, lines)
                    if document is not None:
                        yield from dispatch.value(document, f"{label}:{lineno}")
                        return
                    yield from _replay(replay, label, dispatch)
                    continue
            elif not line or line.isspace():
                continue
            where = f"{label}:{lineno}"
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield Problem(where, _json_reason(line, exc))
                continue
            if type(value) is dict and "response_status" not in value:
                yield dispatch.object(value, where)
            else:
                yield from dispatch.value(value, where)


def _replay(
    lines: Iterable[tuple[int, bytes | None]], label: str, dispatch: _Dispatcher
) -> Iterator[Parsed | Problem]:
    for lineno, line in lines:
        where = f"{label}:{lineno}"
        if line is None:
            yield Problem(where, f"line is longer than {MAX_LINE_BYTES} bytes")
        elif line and not line.isspace():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield Problem(where, _json_reason(line, exc))
                continue
            yield from dispatch.value(value, where)


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _collect_document(
    lineno: int, first: bytes, lines: Iterator[tuple[int, bytes | None]]
) -> tuple[Any, list[tuple[int, bytes | None]]]:
    """The rest of the input parsed as one JSON document, or None and the lines consumed."""
    buffered: list[tuple[int, bytes | None]] = [(lineno, first)]
    parts = [first]
    total = len(first)
    for item in lines:
        buffered.append(item)
        line = item[1]
        if line is None:
            return None, buffered
        total += len(line) + 1
        if total > MAX_DOCUMENT_BYTES:
            return None, buffered
        parts.append(line)
    try:
        return orjson.loads(b"\n".join(parts)), []
    except orjson.JSONDecodeError:
        return None, buffered


def _json_reason(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"malformed JSON: {exc}"


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` without the newline; ``None`` for a line over the limit, whose
    bytes are discarded as they stream past."""
    read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
    lineno = 0
    carry: list[bytes] = []
    carried = 0
    dropping = False
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        if not isinstance(chunk, bytes):
            if isinstance(chunk, str):
                raise TypeError("read() needs a binary stream (open files with 'rb')")
            chunk = bytes(chunk)
        parts = chunk.split(b"\n")
        tail = parts.pop()
        if parts:
            head = parts[0]
            lineno += 1
            if dropping:
                yield lineno, None
                dropping = False
            else:
                if carry:
                    head = b"".join(carry) + head
                yield lineno, (head if len(head) <= MAX_LINE_BYTES else None)
            carry, carried = [], 0
            for line in parts[1:]:
                lineno += 1
                yield lineno, (line if len(line) <= MAX_LINE_BYTES else None)
        if tail and not dropping:
            carry.append(tail)
            carried += len(tail)
            if carried > MAX_LINE_BYTES:
                carry, carried, dropping = [], 0, True
    if dropping:
        yield lineno + 1, None
    elif carry:
        line = b"".join(carry)
        yield lineno + 1, (line if len(line) <= MAX_LINE_BYTES else None)


class Messages:
    """Payloads parsed one at a time, as a live connection receives them (a WebSocket message,
    an SSE ``data`` field, a stream line), with the detection, unwrapping and error reporting
    of :func:`read`. ``where`` labels each result (``"jetstream:1234"``)."""

    __slots__ = ("_dispatch",)

    def __init__(self, fmt: str = "auto") -> None:
        self._dispatch = _Dispatcher(None if fmt == "auto" else get(fmt))

    def parse(self, data: bytes | str, where: str) -> list[Parsed | Problem]:
        """The results of one message: ``[]`` for a blank keep-alive."""
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if not raw or raw.isspace():
            return []
        if len(raw) > MAX_LINE_BYTES:
            return [Problem(where, f"message is longer than {MAX_LINE_BYTES} bytes")]
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [Problem(where, _json_reason(raw, exc))]
        return self.value(value, where)

    def value(self, value: Any, where: str) -> list[Parsed | Problem]:
        """The results of one decoded JSON value."""
        if type(value) is dict and "response_status" not in value:
            return [self._dispatch.object(value, where)]
        return list(self._dispatch.value(value, where))


class _Dispatcher:
    """Unwraps containers and routes each object to its format, remembering the last match."""

    __slots__ = ("forced", "last")

    def __init__(self, forced: Format | None) -> None:
        self.forced = forced
        self.last: Format | None = None

    def value(self, value: Any, where: str, *, depth: int = 0) -> Iterator[Parsed | Problem]:
        if isinstance(value, dict):
            if "response_status" in value and "body" in value:
                body = value["body"]
                if isinstance(body, str):
                    try:
                        body = orjson.loads(body)
                    except orjson.JSONDecodeError as exc:
                        yield Problem(where, f"cassette body is not JSON: {exc}")
                        return
                yield from self.value(body, where, depth=depth + 1)
            else:
                yield self.object(value, where)
        elif isinstance(value, list) and depth < 2:
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from self.value(item, f"{where}[{i}]", depth=depth + 1)
                else:
                    yield Problem(f"{where}[{i}]", f"expected a JSON object, got {_kind(item)}")
        else:
            yield Problem(where, f"expected a JSON object or array, got {_kind(value)}")

    def object(self, obj: dict[str, Any], where: str) -> Parsed | Problem:
        fmt = self.forced
        if fmt is None:
            try:
                fmt = detect(obj, self.last)
            except UnknownFormat as exc:
                return Problem(where, f"unknown shape: {exc.reason}")
            self.last = fmt
        try:
            return Parsed(where, fmt.parse(obj))
        except ParseError as exc:
            return Problem(where, f"{fmt.name}: {exc.reason}")
        except _PARSER_BUGS as exc:
            return Problem(where, f"{fmt.name}: malformed payload ({type(exc).__name__}: {exc})")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a nested array"
    return "null" if value is None else type(value).__name__
