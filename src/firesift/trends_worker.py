"""Trend state kept by a worker process that follows the store's change log.

Why a process. Counting terms is tens of microseconds of Python per post. Done inside the
pipeline (:class:`~firesift.database.LiveTrends` as a sink) it more than doubles the cost of
ingest, and in the server it takes the interpreter lock from answers and HTTP. In its own
process it runs on another core: the writer pays nothing per post (the worker reads what the
store has committed, the same change log the index catches up from), and the server's threads
only pay for a report's round trip over a pipe.

Protocol. The worker opens the store, rebuilds :class:`~firesift.database.LiveTrends` from it
(exactly as in-process trend state is rebuilt on open), then loops: answer the requests waiting
on its pipe, apply up to :data:`CHUNK` changes past its position, and when there are none wait
up to ``poll_s`` for a request. Requests are ``report`` (the arguments of
:meth:`LiveTrends.report`; an error raised there is sent back and re-raised in the caller) and
``sync`` (answered once the worker has applied the store's changes up to the given seq, so a
caller can wait for trends to include what it just ingested). A report waits at most one chunk
of changes (a few tens of milliseconds) behind a backlog.

Failure. The worker exits when the pipe closes (its owner closed or died). If it dies, the next
call starts a new one, which rebuilds from the store: the store is the truth, as for the index.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from firesift.errors import FiresiftError
from firesift.trends import TrendConfig, TrendReport

__all__ = ["CHUNK", "TrendWorker"]

CHUNK = 1000
"""Changes applied between two looks at the request pipe."""

_START_TIMEOUT_S = 600.0


class TrendWorker:
    """The trend state of the data directory ``path``, computed in a child process.

    Same reading interface as :class:`~firesift.database.LiveTrends` (:meth:`report`, and
    :meth:`apply_changes` which does nothing: the worker reads the store itself). Thread-safe:
    calls from several threads take turns on the pipe.
    """

    def __init__(
        self, path: Path, config: TrendConfig | None = None, *, poll_s: float = 0.05
    ) -> None:
        self.path = Path(path)
        self.config = config or TrendConfig()
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._closed = False
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        """Start ``python -m firesift.trends_worker FD`` with one end of a socket pair as FD (a
        plain child process: unlike multiprocessing's spawn it does not re-import the caller's
        ``__main__``)."""
        mine, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "firesift.trends_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        conn = Connection(mine.detach())
        conn.send((str(self.path), self.config, self.poll_s))
        self._proc, self._conn = proc, conn

    @property
    def pid(self) -> int:
        """The worker's process id (it changes when a dead worker is replaced)."""
        return int(self._proc.pid)

    def _alive(self) -> bool:
        return bool(self._proc.poll() is None)

    def apply_changes(self, changes: object) -> None:
        """Nothing to do: the worker follows the store's change log by itself."""

    def report(
        self, *, as_of_ms: int | None = None, window_ms: int = 3_600_000, limit: int = 20
    ) -> TrendReport:
        """As :meth:`LiveTrends.report`, computed by the worker."""
        result: TrendReport = self._call(("report", as_of_ms, window_ms, limit))
        return result

    def sync(self, seq: int) -> int:
        """Wait until the worker has applied the store's changes up to ``seq``; its position."""
        position: int = self._call(("sync", seq))
        return position

    def _call(self, request: tuple[Any, ...]) -> Any:
        with self._lock:
            if self._closed:
                raise FiresiftError(f"the trends worker for {self.path} is closed")
            for _ in range(2):
                if not self._alive():
                    self._close_conn()
                    self.restarts += 1
                    self._start()
                conn = self._conn
                assert conn is not None
                try:
                    conn.send(request)
                    status, value = self._receive(conn)
                except (EOFError, OSError):
                    self._wait(1.0)
                    continue
                if status == "err":
                    raise value
                return value
        raise FiresiftError(f"the trends worker for {self.path} keeps exiting; see its log")

    def _receive(self, conn: Connection) -> Any:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not conn.poll(0.5):
            if not self._alive():
                raise EOFError("trends worker exited")
            if time.monotonic() > deadline:
                raise FiresiftError("the trends worker did not answer within 10 minutes")
        return conn.recv()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Stop the worker (its state is rebuilt from the store next time)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._alive() and self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(("stop",))
            self._close_conn()
            if not self._wait(5.0):
                self._proc.terminate()
                self._wait(5.0)

    def _wait(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def _tune_gc() -> None:
    """The tracker holds many small long-lived containers and creates few cycles: collect the
    young generation less often, and move the rebuilt state out of the collector's sight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def _serve(conn: Connection) -> None:
    from firesift.database import LiveTrends
    from firesift.store import Store

    try:
        path, config, poll_s = conn.recv()
    except (EOFError, OSError):
        return
    store = Store(Path(path))
    try:
        position = store.last_seq()
        trends = LiveTrends(store, config)
        _tune_gc()
        waiting: list[int] = []
        while True:
            while conn.poll(0):
                request = conn.recv()
                kind = request[0]
                if kind == "stop":
                    return
                if kind == "sync":
                    waiting.append(int(request[1]))
                elif kind == "report":
                    _, as_of_ms, window_ms, limit = request
                    try:
                        reply: tuple[str, Any] = (
                            "ok",
                            trends.report(as_of_ms=as_of_ms, window_ms=window_ms, limit=limit),
                        )
                    except Exception as e:
                        reply = ("err", e)
                    conn.send(reply)
            changes = store.changes_since(position, CHUNK)
            if changes:
                trends.apply_changes(changes)
                position = changes[-1].seq
            if waiting and (not changes or max(waiting) <= position):
                for _ in waiting:
                    conn.send(("ok", position))
                waiting = []
            if not changes:
                conn.poll(poll_s)
    except (EOFError, OSError, KeyboardInterrupt):
        return
    finally:
        store.close()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
