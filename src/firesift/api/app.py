"""The ASGI application, assembled from routers and middleware around one :class:`Service`.

Layers, outermost first: metrics timing (every request, errors included), OpenAI-shaped
errors (:class:`~firesift.api.errors.ErrorMiddleware`), API-key checks, then the routes:
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

import anyio
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from firesift.api import openai_compat, openapi, responses, rest
from firesift.api.auth import AuthPolicy, KeyStore
from firesift.api.errors import APIError, ErrorMiddleware, error_response, http_exception_handler
from firesift.api.metrics import Metrics, MetricsMiddleware, metrics_endpoint
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
    """Refuses API requests without a valid key when :class:`AuthPolicy` requires one."""

    def __init__(self, app: ASGIApp, policy: AuthPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._public(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not self.policy.required(client[0] if client else None):
            await self.app(scope, receive, send)
            return
        secret = self._secret(scope)
        keys = self.policy.keys
        if secret is not None and (await anyio.to_thread.run_sync(keys.check, secret)) is not None:
            await self.app(scope, receive, send)
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
        if scope.get("method") == "GET":
            request = Request(scope)
            key = request.query_params.get("api_key")
            if key:
                return str(key)
        return None


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
) -> Starlette:
    """The app serving ``service`` (which the caller starts and stops). ``host`` is the address
    the server listens on: anything but loopback makes API keys mandatory (see
    :mod:`firesift.api.auth`); ``keys`` defaults to the database directory's key file."""
    web = web_dir or WEB_DIR
    metrics = Metrics(service)
    policy = AuthPolicy(keys or KeyStore(service.db.path), bind_host=host, require_key=require_key)
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
            Middleware(AuthMiddleware, policy=policy),
        ],
        exception_handlers={HTTPException: http_exception_handler},
        lifespan=mcp.lifespan,
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.auth = policy
    app.state.web_dir = web
    app.state.heartbeat_s = heartbeat_s
    app.state.engine_limiter = anyio.CapacityLimiter(engine_threads)
    return app
