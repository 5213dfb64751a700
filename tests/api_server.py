"""Helpers and fixtures for the API tests: a database ingested from real recorded posts, the
server as a subprocess on a real socket, and an in-process service.

Every consumer gets its own copy of the ingested data directory (a store and an index can have
only one writer), copied from one ingest per test session.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from firesift.api.app import create_app
from firesift.database import Database
from firesift.formats.reader import Problem, read
from firesift.pipeline import IngestSummary
from firesift.service import Service

POSTS = "rumoureval2017/posts.jsonl"
SERVING = "firesift: serving on "


def ingest_file(db_dir: Path, path: Path) -> IngestSummary:
    summary = IngestSummary()
    with Database(db_dir) as db:
        pipeline = db.pipeline()
        for item in read(path):
            if isinstance(item, Problem):
                summary.skip(item.where, item.reason)
            else:
                pipeline.feed(item.events, summary)
        pipeline.flush(summary)
    return summary


@pytest.fixture(scope="session")
def ingested_db(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Path:
    """A data directory holding RumourEval 2017 (4,519 real posts); copy it before use."""
    db = tmp_path_factory.mktemp("ingested") / "db"
    summary = ingest_file(db, real_data / POSTS)
    assert summary.ingested > 4000
    return db


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _serve_argv() -> list[str]:
    return [sys.executable, "-m", "firesift.cli", "serve"]


class ServerProcess:
    """``firesift serve`` in a subprocess on a free port; ``url`` once it listens."""

    def __init__(
        self, db: Path, home: Path, *, host: str = "127.0.0.1", args: tuple[str, ...] = ()
    ) -> None:
        self.log = home / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIRESIFT_")}
        env.update(
            HOME=str(home),
            XDG_DATA_HOME=str(home / "data"),
            XDG_CONFIG_HOME=str(home / "config"),
            PYTHONUNBUFFERED="1",
        )
        argv = [*_serve_argv(), "--db", str(db), "--host", host, "--port", "0", *args]
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.url = self._wait()

    def _wait(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith(SERVING):
                    return line[len(SERVING) :].strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(ingested_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server over a copy of the real data, for the whole module."""
    home = tmp_path_factory.mktemp("server")
    proc = ServerProcess(copy_db(ingested_db, home / "db"), home)
    try:
        yield proc
    finally:
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out


@pytest.fixture(scope="module")
def service(ingested_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An in-process service over a copy of the real data (fast periodic live events)."""
    home = tmp_path_factory.mktemp("service")
    db = Database(copy_db(ingested_db, home / "db"))
    svc = Service(db, owns_db=True, trends_every_s=0.3, stats_every_s=0.3).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def app(service: Service) -> Starlette:
    return create_app(service, heartbeat_s=0.5)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (no socket): the fast path for REST tests."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
