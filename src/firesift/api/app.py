"""The ASGI application, assembled from routers and middleware around one :class:`Service`.

Layers, outermost first: metrics timing (every request, errors included), OpenAI-shaped
errors (:class:`~firesift.api.errors.ErrorMiddleware`), API-key checks and per-key rate limits
(:class:`AuthMiddleware`, :mod:`firesift.api.ratelimit`), then the routes:
``/v1`` (OpenAI-compatible), ``/api`` (REST + SSE), ``/mcp`` (MCP over streamable HTTP,
:mod:`firesift.mcp_server`; its session manager runs in the app's lifespan), ``/healthz``,
``/metrics``, ``/openapi.json`` (the API described, :mod:`firesift.api.openapi`; public, like
``/healthz``) and the web page (``/`` and ``/static/...`` from ``firesift/web``; the directory
may be missing or partly built, what is there is served). Engine work runs in a dedicated
thread-pool limiter so a burst of chat requests cannot starve the short REST calls of worker
threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firesift.api import openai_compat, openapi, responses, rest
from firesift.api.accesslog import URL_KEY_PARAMS
from firesift.api.auth import AuthPolicy, KeyStore
from firesift.api.errors import APIError, ErrorMiddleware, error_response, http_exception_handler
from firesift.api.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from firesift.api.ratelimit import RateLimiter
from firesift.mcp_server import McpHttp

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["WEB_DIR", "AuthMiddleware", "create_app"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_PUBLIC = ("/healthz", "/openapi.json", "/static/", "/favicon.ico")

_PLACEHOLDER = """<!doctype html><meta charset="utf-8"><title>firesift</title>
<h1>firesift</h1><p>The web page is not built yet. The API is live:
<a href="/v1/models">/v1/models</a>, <a href="/api/stats">/api/stats</a>.</p>"""


class _WebFiles(StaticFiles):
    """Static files that answer 404 (not a 500) while the page's directory does not exist."""

    async def check_config(self) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            return
        await super().check_config()


class AuthMiddleware:
    """Refuses API requests without a valid key when :class:`AuthPolicy` requires one, any
    request carrying a key in its URL (URLs end up in access logs, proxies and browser history),
    and requests over the key's (or, without a key, the client address's) rate limit."""

    def __init__(
        self, app: ASGIApp, policy: AuthPolicy, limiter: RateLimiter | None = None
    ) -> None:
        self.app = app
        self.policy = policy
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if _key_in_url(scope.get("query_string") or b""):
            err = APIError(
                401,
                "API keys are not accepted in the URL (query strings are logged);"
                " send the key as 'Authorization: Bearer <key>'",
                code="api_key_in_url",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await error_response(err)(scope, receive, send)
            return
        client = scope.get("client")
        client_host = client[0] if client else None
        if not self.policy.required(client_host):
            await self._limited(f"addr:{client_host}", scope, receive, send)
            return
        secret = self._secret(scope)
        keys = self.policy.keys
        key = None if secret is None else await anyio.to_thread.run_sync(keys.check, secret)
        if key is not None:
            await self._limited(f"key:{key.id}", scope, receive, send)
            return
        if not await anyio.to_thread.run_sync(keys.exist):
            hint = "no key exists yet: create one with `firesift keys create`"
        elif secret is None:
            hint = "send it as 'Authorization: Bearer <key>'"
        else:
            hint = "this key is invalid or revoked (see `firesift keys list`)"
        err = APIError(
            401,
            f"an API key is required on this server; {hint}",
            code="missing_api_key" if secret is None else "invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await error_response(err)(scope, receive, send)

    async def _limited(self, bucket: str, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limiter is None:
            await self.app(scope, receive, send)
            return
        decision = self.limiter.check(bucket)
        headers = decision.headers()
        if not decision.allowed:
            err = APIError(
                429,
                f"rate limit reached: {decision.limit} requests a minute"
                f" (burst {self.limiter.burst}); retry after {headers['retry-after']} s",
                code="rate_limit_exceeded",
                headers=headers,
            )
            await error_response(err)(scope, receive, send)
            return
        extra = [(k.encode(), v.encode()) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _public(path: str) -> bool:
        return path == "/" or path.startswith(_PUBLIC)

    @staticmethod
    def _secret(scope: Scope) -> str | None:
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                scheme, _, token = bytes(value).decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return token.strip()
        return None


def _key_in_url(query_string: bytes) -> bool:
    """True if the query string carries a non-empty ``api_key`` or ``key`` parameter."""
    if not query_string:
        return False
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=False)
    return any(name.lower() in URL_KEY_PARAMS for name, _ in pairs)


async def healthz(request: Request) -> Response:
    service: Service = request.app.state.service
    ok = service.writer_alive
    body = {"status": "ok" if ok else "unavailable", "writer": ok, "queued": service.queued}
    return Response(
        orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json"
    )


async def index_page(request: Request) -> Response:
    page = request.app.state.web_dir / "index.html"
    if page.is_file():
        return FileResponse(page, headers={"Cache-Control": "no-cache"})
    return HTMLResponse(_PLACEHOLDER)


def create_app(
    service: Service,
    *,
    keys: KeyStore | None = None,
    host: str = "127.0.0.1",
    require_key: bool = False,
    web_dir: Path | None = None,
    engine_threads: int = 64,
    heartbeat_s: float = 15.0,
    rate_limit: int = 0,
    rate_limit_burst: int = 0,
    sse_stall_s: float = 30.0,
) -> Starlette:
    """The app serving ``service`` (which the caller starts and stops). ``host`` is the address
    the server listens on: anything but loopback makes API keys mandatory (see
    :mod:`firesift.api.auth`); ``keys`` defaults to the database directory's key file.
    ``rate_limit`` (requests a minute per key, 0: none) and ``rate_limit_burst`` are
    :mod:`firesift.api.ratelimit`'s; an event stream whose client has not taken a write for
    ``sse_stall_s`` seconds is dropped (:func:`firesift.api.routing.sse_response`)."""
    web = web_dir or WEB_DIR
    metrics = Metrics(service)
    policy = AuthPolicy(keys or KeyStore(service.db.path), bind_host=host, require_key=require_key)
    limiter = RateLimiter(rate_limit, rate_limit_burst) if rate_limit > 0 else None
    mcp = McpHttp(service, host=host)
    routes = [
        mcp.route,
        *openai_compat.routes,
        *responses.routes,
        *rest.routes,
        *openapi.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/", index_page, methods=["GET"]),
        Mount("/static", app=_WebFiles(directory=web, check_dir=False), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(ErrorMiddleware),
            Middleware(AuthMiddleware, policy=policy, limiter=limiter),
        ],
        exception_handlers={HTTPException: http_exception_handler},
        lifespan=mcp.lifespan,
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.auth = policy
    app.state.web_dir = web
    app.state.heartbeat_s = heartbeat_s
    app.state.sse_stall_s = sse_stall_s
    app.state.engine_limiter = anyio.CapacityLimiter(engine_threads)
    return app
