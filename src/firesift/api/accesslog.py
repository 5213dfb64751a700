"""The server's access log, which must never hold a secret.

Uvicorn writes each request's path *with its query string* to the ``uvicorn.access`` logger.
The app refuses keys sent in the URL (:data:`URL_KEY_PARAMS`, see
:class:`~firesift.api.app.AuthMiddleware`), but refusing happens after the request line is
read, and the log line is written anyway: so :class:`RedactingFilter` replaces the value of
every key-like query parameter (:data:`REDACTED_PARAMS`) before the line is formatted. Headers
(where keys belong) are never logged by uvicorn. The filter is installed by
:func:`install` when the server starts, not at import.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED_PARAMS", "URL_KEY_PARAMS", "RedactingFilter", "install", "redact"]

URL_KEY_PARAMS = frozenset({"api_key", "key"})
"""Query parameters the app refuses as carrying an API key."""

REDACTED_PARAMS = URL_KEY_PARAMS | {"access_token", "token", "apikey", "api-key", "secret"}
"""Query parameters whose values never reach a log line."""

_PARAM = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s\"]*)")


def redact(text: str) -> str:
    """``text`` with the value of every :data:`REDACTED_PARAMS` query parameter replaced by
    ``***`` (names compared case-insensitively, percent-encoded names decoded)."""
    from urllib.parse import unquote

    def sub(m: re.Match[str]) -> str:
        if unquote(m.group(2)).lower() in REDACTED_PARAMS:
            return f"{m.group(1)}{m.group(2)}=***"
        return m.group(0)

    return _PARAM.sub(sub, text) if "=" in text else text


class RedactingFilter(logging.Filter):
    """Redacts key-like query values in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    """Put a :class:`RedactingFilter` on ``logger_name`` (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
