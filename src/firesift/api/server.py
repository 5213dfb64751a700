"""Running the app on uvicorn: ``firesift serve`` and ``python -m firesift.api.server``.

The listening socket is bound here, before uvicorn starts, so ``--port 0`` works (the OS picks
a free port) and the actual address is known and announced on stderr as one line,
``firesift: serving on http://HOST:PORT``, which scripts and tests wait for. Uvicorn's access
log is off (a log line per request costs more than many requests) unless ``--log-level`` is
``info`` or lower, and then key-like query values are redacted (:mod:`firesift.api.accesslog`);
errors are always logged. Listening beyond loopback with no API key created is refused before
anything starts: such a server would answer every request with a 401.
Shutdown (SIGINT/SIGTERM) gives open streams a few seconds, then the service finishes its queued
writes, makes them searchable and closes the database.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from firesift.api import accesslog
from firesift.api.app import create_app
from firesift.api.auth import KeyStore, is_loopback
from firesift.config import Settings, load
from firesift.errors import ConfigError
from firesift.service import Service
from firesift.sources import Source

__all__ = ["bind", "main", "open_service", "serve", "serve_in_thread"]


def open_service(settings: Settings, **kwargs: Any) -> Service:
    """A :class:`Service` over the database in ``settings.db`` (which it will close), with the
    ``llm`` composer when an LLM endpoint is configured. Its trend state and its answers are
    computed in worker processes (:mod:`firesift.worker`), off the interpreter that serves
    requests and ingests."""
    from firesift.database import Database

    composers: dict[str, Any] = {}
    if settings.llm_base_url or settings.llm_model:
        from firesift import llm
        from firesift.answer.llm_composer import LLMComposer

        composers["llm"] = LLMComposer(llm.from_settings(settings))
    db = Database(settings.db, worker=True)
    try:
        return Service(
            db,
            batch_size=settings.batch_size,
            refresh_ms=settings.refresh_ms,
            composers=composers or None,
            owns_db=True,
            answer_workers=settings.answer_workers,
            **kwargs,
        )
    except BaseException:
        db.close()
        raise


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _config(app: Starlette, log_level: str) -> uvicorn.Config:
    access_log = log_level.lower() in ("info", "debug", "trace")
    if access_log:
        accesslog.install()
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",  # runs the /mcp session manager (firesift.mcp_server.McpHttp)
        timeout_graceful_shutdown=3,
        server_header=False,
    )


def serve(
    settings: Settings,
    *,
    service: Service | None = None,
    sources: Sequence[Source] = (),
    require_key: bool = False,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``settings.db`` on ``settings.host:settings.port`` until interrupted, then stop
    the service. ``service`` is one the caller built over that database (the demo's, with its
    replay clock); by default one is opened from ``settings``, running ``sources`` (the live
    product: ingest and serve in one process). Raises :class:`~firesift.errors.ConfigError`
    when ``settings.host`` is not loopback and no API key exists."""
    keys = KeyStore(settings.db)
    if not is_loopback(settings.host) and not keys.exist():
        raise ConfigError(
            f"refusing to listen on {settings.host} without API keys:"
            " create one with `firesift keys create`"
        )
    sock = bind(settings.host, settings.port)
    try:
        service = service or open_service(settings, sources=sources)
    except BaseException:
        sock.close()
        raise
    try:
        service.start()
        app = create_app(
            service,
            keys=keys,
            host=settings.host,
            require_key=require_key,
            rate_limit=settings.rate_limit,
            rate_limit_burst=settings.rate_limit_burst,
        )
        server = uvicorn.Server(_config(app, log_level))
        url = _url(sock)
        (announce or _announce)(url)
        if not is_loopback(settings.host):
            _announce_note(
                "listening beyond loopback: every API request needs a key (firesift keys create)"
            )
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()
        service.stop()
        keys.flush()


def _announce(url: str) -> None:
    print(f"firesift: serving on {url}", file=sys.stderr, flush=True)


def _announce_note(text: str) -> None:
    print(f"firesift: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def serve_in_thread(
    app: Starlette, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> Iterator[str]:
    """Run ``app`` on a real socket in a background thread; yields its base URL. For tests and
    benchmarks (the caller owns the service behind ``app``)."""
    sock = bind(host, port)
    server = uvicorn.Server(_config(app, log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread exited during start-up")
            threading.Event().wait(0.01)
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m firesift.api.server [--db DIR] [--host H] [--port P] [--require-key]``."""
    parser = argparse.ArgumentParser(
        prog="python -m firesift.api.server", description="Serve the firesift API."
    )
    parser.add_argument("--db", type=Path, default=None, help="data directory")
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (0: any free port)")
    parser.add_argument(
        "--require-key", action="store_true", help="require API keys on loopback too"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    settings = load({"db": args.db, "host": args.host, "port": args.port})
    serve(settings, require_key=args.require_key, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
