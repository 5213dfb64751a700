"""Every API error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

OpenAI SDKs (and the web page) read ``error.message`` and branch on the HTTP status, so every
failure path of the app ends here: :class:`APIError` raised by handlers, Starlette's
``HTTPException`` (unknown route 404, wrong method 405), pydantic validation errors (422 naming
the field in ``param`` as a dotted path, e.g. ``search_parameters.from_date``), firesift's own
:class:`~firesift.errors.FiresiftError` tree (translated here and nowhere else), and any other
exception, which becomes a bare 500 with no traceback in the body (the traceback goes to the
log). The ``type`` values are OpenAI's (``invalid_request_error``, ``authentication_error``,
``not_found_error``, ``server_error``) so clients that switch on them keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firesift.errors import (
    ConfigError,
    FiresiftError,
    IndexError_,
    NotFound,
    ParseError,
    QueryError,
    StoreError,
    TimeParseError,
)

__all__ = [
    "APIError",
    "ErrorMiddleware",
    "error_body",
    "error_response",
    "from_firesift",
    "from_validation",
    "http_exception_handler",
]

log = logging.getLogger("firesift.api")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """An error answer: HTTP ``status`` plus the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "api_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(err: APIError) -> Response:
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers,
    )


def _loc(loc: Sequence[int | str], prefix: str = "") -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query")]
    text = ".".join(parts)
    if prefix:
        return f"{prefix}.{text}" if text else prefix
    return text or None


def from_validation(exc: ValidationError, *, prefix: str = "") -> APIError:
    """A 422 naming the first invalid field (dotted path) and saying what is wrong with it."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return APIError(422, "invalid request", code="invalid_value")
    first = errors[0]
    param = _loc(first["loc"], prefix)
    msg = first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    where = f"{param}: " if param else ""
    return APIError(422, f"{where}{msg}{more}", param=param, code=code)


def from_firesift(exc: FiresiftError, *, param: str | None = None) -> APIError:
    """Translate the documented exception tree (see :mod:`firesift.errors`)."""
    if isinstance(exc, QueryError):
        return APIError(400, str(exc), param=param or "q", code="invalid_query")
    if isinstance(exc, TimeParseError):
        return APIError(422, str(exc), param=param, code="invalid_time")
    if isinstance(exc, NotFound):
        return APIError(404, str(exc), param=param, code="not_found")
    if isinstance(exc, ConfigError | ParseError):
        return APIError(422, str(exc), param=param, code="invalid_value")
    if isinstance(exc, StoreError | IndexError_):
        log.error("storage failure: %s", exc)
        return APIError(503, "the data store is unavailable; try again", code="unavailable")
    llm_error = _llm_error(exc)
    if llm_error is not None:
        return llm_error
    return APIError(400, str(exc), param=param)


def _llm_error(exc: FiresiftError) -> APIError | None:
    try:
        from firesift.llm import LLMError, LLMTimeout
    except ImportError:  # pragma: no cover - llm is part of the package
        return None
    if isinstance(exc, LLMTimeout):
        return APIError(504, f"the LLM endpoint timed out: {exc}", code="llm_timeout")
    if isinstance(exc, LLMError):
        return APIError(502, f"the LLM endpoint failed: {exc}", code="llm_error")
    return None


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 (and any HTTPException) in the OpenAI shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
        code: str | None = "unknown_route"
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed on {request.url.path}"
        message += f" (allowed: {allow})" if allow else ""
        code = "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    err = APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {}))
    return error_response(err)


class ErrorMiddleware:
    """The outermost layer: :class:`APIError` and firesift errors become their answers, any
    other exception a 500 without internals (logged with its traceback). After a response has
    started (a stream), nothing can be sent any more: the error is logged and the stream ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                log.exception("error after the response started: %s", scope.get("path"))
                return
            if isinstance(exc, APIError):
                err = exc
            elif isinstance(exc, FiresiftError):
                err = from_firesift(exc)
            elif isinstance(exc, ValidationError):
                err = from_validation(exc)
            else:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                err = APIError(500, "internal server error", code="internal_error")
            await error_response(err)(scope, receive, send)
