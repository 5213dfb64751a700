"""firesift's exception tree. Core code raises these; only the edges translate them (the CLI
into one-line messages that say how to fix the problem, the API into OpenAI-shaped errors).

::

    FiresiftError                 base of everything firesift raises on purpose
    ├── ConfigError               a setting has a bad value (names the key and the value)
    ├── ParseError                a payload could not be read (names file, line, reason)
    │   └── UnknownFormat         no parser recognises the payload's shape
    ├── QueryError                a search query is malformed (points at the position)
    ├── TimeParseError            a time expression ("2h", "yesterday", ISO 8601) is not understood
    ├── StoreError                the durable store cannot be opened or written
    ├── IndexError_               the search index failed (it can be rebuilt from the store)
    ├── NotFound                  a post, key or model that was asked for does not exist
    └── LLMError                  an LLM endpoint failed (firesift.llm.base; .status)
        ├── LLMTimeout            it did not answer in time (API: 504)
        ├── ToolsUnsupported      the model cannot call tools (prompt-only fallback)
        └── LLMNotConfigured      no endpoint set (also a ConfigError; API: 503)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FiresiftError",
    "IndexError_",
    "NotFound",
    "ParseError",
    "QueryError",
    "StoreError",
    "TimeParseError",
    "UnknownFormat",
]


class FiresiftError(Exception):
    """Base class for errors firesift raises on purpose; ``str()`` is a user-facing message.
    They pickle with their attributes (``position``, ``where``...), so an error raised in a
    worker process is re-raised intact in the caller."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(
    cls: type[FiresiftError], args: tuple[object, ...], state: dict[str, object]
) -> FiresiftError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(FiresiftError):
    """A setting has an invalid value."""


class ParseError(FiresiftError):
    """A payload could not be parsed. ``where`` is e.g. ``"file.jsonl:12"`` when known."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.where = where


class UnknownFormat(ParseError):
    """No registered format recognises the payload."""


class QueryError(FiresiftError):
    """A malformed search query. ``position`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, *, query: str = "", position: int | None = None) -> None:
        self.query = query
        self.position = position
        self.reason = message
        if position is not None and query:
            pointer = " " * position + "^"
            message = f"{message} (at character {position + 1})\n  {query}\n  {pointer}"
        super().__init__(message)


class TimeParseError(FiresiftError):
    """A time expression could not be understood."""


class StoreError(FiresiftError):
    """The durable store failed."""


class IndexError_(FiresiftError):
    """The search index failed; it is derived data and can be rebuilt from the store."""


class NotFound(FiresiftError):
    """Something asked for by name or id does not exist."""
