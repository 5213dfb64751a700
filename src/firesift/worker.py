"""Read workers: trend state and answers computed in child processes, off the server's
interpreter.

Why processes. Counting terms is tens of microseconds of Python per post and an extractive
answer tens of milliseconds. Done in the server process they take the interpreter lock from
ingest and HTTP (and from each other); done inside the pipeline, trend counting more than
doubles the cost of ingest. In child processes they run on the other cores: the writer pays
nothing per post for trends, and the server's threads only pay for a pipe round trip.

Two roles (:class:`ReadWorker` ``role``):

- ``trends``: the :class:`~firesift.database.LiveTrends` of the data directory, rebuilt from
  the store exactly as in-process trend state is, then kept current by following the store's
  change log (what the store has committed, the same log the index catches up from). One per
  database: trend state is one sequential computation.
- ``answers``: an :class:`~firesift.answer.engine.AnswerEngine` over the store and the search
  index opened for reading (reloaded before each answer, so it sees every commit the writer
  made). Its trend reports (for "what is happening" questions) are asked of the parent, which
  asks the trends worker. Any number can run side by side.

Protocol. Every request carries an id; replies carry it back, and one dispatcher thread per
worker in the parent hands them to the waiting caller, so any number of threads can have
requests in flight. ``report`` and ``sync`` (answered once the trends worker has applied the
store's changes up to a seq) get one reply; ``answer`` gets a reply per
:class:`~firesift.answer.model.AnswerEvent`, then an end marker. An exception raised in a worker
comes back and is re-raised in the caller. The trends worker's loop serves waiting requests,
then up to :data:`CHUNK` changes of the change log, so a request waits at most one chunk
(about ten milliseconds).

Failure. A worker exits when its pipe closes (its owner closed or died). If it dies, a request
in flight is sent again to a replacement, which rebuilds from the store (every request is a
read; an answer already partly streamed fails instead). The store is the truth, as for the
index.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from firesift.errors import FiresiftError
from firesift.trends import TrendConfig, TrendReport

if TYPE_CHECKING:
    from firesift.answer.model import AnswerEvent, Filters, Message
    from firesift.database import Database

__all__ = ["CHUNK", "ReadWorker"]

CHUNK = 250
"""Changes applied between two looks at the request pipe."""

_END = "end"
_Box = queue.SimpleQueue[tuple[str, Any]]
_TIMEOUT_S = 600.0


class _Lost(FiresiftError):
    """The worker died with the request in flight."""


class ReadWorker:
    """A child process serving trend reports and syncs (``role="trends"``) or answer streams
    (``role="answers"``, trend reports asked of ``trend_source``) for the data directory
    ``path``. Thread-safe.

    A trends worker answers :meth:`report` as :class:`~firesift.database.LiveTrends` does; it
    needs no feeding, since it reads the store's change log itself.
    """

    def __init__(
        self,
        path: Path,
        config: TrendConfig | None = None,
        *,
        role: Literal["trends", "answers"] = "trends",
        trend_source: ReadWorker | None = None,
        poll_s: float = 0.05,
    ) -> None:
        if role not in ("trends", "answers"):
            raise ValueError(f"role must be 'trends' or 'answers', got {role!r}")
        self.path = Path(path)
        self.config = config or TrendConfig()
        self.role = role
        self.trend_source = trend_source
        self.poll_s = poll_s
        self.restarts = 0
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[_Box, subprocess.Popen[bytes]]] = {}
        self._closed = False
        self._proc: subprocess.Popen[bytes]
        self._conn: Connection
        self._start()

    @property
    def in_flight(self) -> int:
        """Requests sent and not fully answered (to pick the least busy of several workers)."""
        return len(self._waiting)

    # -- process ---------------------------------------------------------------------------

    def _start(self) -> None:
        """Start ``python -m firesift.worker FD`` with one end of a socket pair as FD (a plain
        child process: unlike multiprocessing's spawn it does not re-import the caller's
        ``__main__``), and the thread that dispatches its replies."""
        mine, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "firesift.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        conn = Connection(mine.detach())
        conn.send((self.role, str(self.path), self.config, self.poll_s))
        self._proc, self._conn = proc, conn
        self._broken = False
        self._ready = threading.Event()
        threading.Thread(
            target=self._dispatch, args=(proc, conn), name="firesift-worker-replies", daemon=True
        ).start()

    def _dispatch(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        """Hand each reply to the caller waiting for its id; when the pipe breaks, tell every
        caller still waiting on this process."""
        try:
            while True:
                rid, kind, value = conn.recv()
                if kind == "trends":
                    self._answer_trends(conn, value)
                    continue
                if kind == "ready":
                    self._ready.set()
                    continue
                waiting = self._waiting.get(rid)
                if waiting is not None:
                    waiting[0].put((kind, value))
        except (EOFError, OSError):
            pass
        with self._send_lock:
            if self._proc is proc:
                self._broken = True
            for box, sent_to in list(self._waiting.values()):
                if sent_to is proc:
                    box.put(("lost", None))

    def _answer_trends(self, conn: Connection, args: tuple[int | None, int, int]) -> None:
        """An answers worker asks for a trend report: ask the trends worker, send it back."""
        as_of_ms, window_ms, limit = args
        reply: tuple[str, Any]
        if self.trend_source is None:
            reply = ("err", FiresiftError("no trend state is kept for this database"))
        else:
            try:
                report = self.trend_source.report(
                    as_of_ms=as_of_ms, window_ms=window_ms, limit=limit
                )
                reply = ("ok", report)
            except FiresiftError as e:
                reply = ("err", e)
        with self._send_lock, contextlib.suppress(OSError):
            conn.send((0, "trends", reply))

    def wait_ready(self, timeout: float = _TIMEOUT_S) -> bool:
        """Wait until the worker has loaded its state (an answers worker has also answered one
        warm-up question, so the first real one does not pay for loading models); False on
        timeout or if it exited."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self._alive() or time.monotonic() > deadline:
                return False
        return True

    @property
    def pid(self) -> int:
        """The worker's process id (it changes when a dead worker is replaced)."""
        return int(self._proc.pid)

    def _alive(self) -> bool:
        return self._proc.poll() is None

    def _request(self, *request: Any) -> tuple[int, _Box]:
        box: _Box = queue.SimpleQueue()
        with self._send_lock:
            if self._closed:
                raise FiresiftError(f"the read worker for {self.path} is closed")
            if self._broken or not self._alive():
                self._conn.close()
                if not self._wait(1.0):
                    self._proc.kill()
                    self._wait(5.0)
                self.restarts += 1
                self._start()
            rid = next(self._ids)
            self._waiting[rid] = (box, self._proc)
            try:
                self._conn.send((rid, *request))
            except OSError:
                box.put(("lost", None))
        return rid, box

    def _reply(self, rid: int, box: _Box) -> tuple[str, Any]:
        try:
            kind, value = box.get(timeout=_TIMEOUT_S)
        except queue.Empty:
            raise FiresiftError(
                f"the read worker did not answer within {_TIMEOUT_S:.0f} s"
            ) from None
        if kind == "lost":
            raise _Lost("the read worker exited; it is restarted on the next request")
        if kind == "err":
            raise value
        return kind, value

    def _first_reply(self, *request: Any) -> tuple[int, _Box, tuple[str, Any]]:
        """Send ``request`` and wait for its first reply. If the worker died before replying,
        the request goes once more, to its replacement: every request is a read. The caller
        forgets ``rid`` once done with it."""
        rid, box = self._request(*request)
        try:
            try:
                return rid, box, self._reply(rid, box)
            except _Lost:
                self._waiting.pop(rid, None)
                rid, box = self._request(*request)
                return rid, box, self._reply(rid, box)
        except BaseException:
            self._waiting.pop(rid, None)
            raise

    def _call(self, *request: Any) -> Any:
        """One request, one reply."""
        rid, _, (_, value) = self._first_reply(*request)
        self._waiting.pop(rid, None)
        return value

    # -- trends ----------------------------------------------------------------------------

    def report(
        self, *, as_of_ms: int | None = None, window_ms: int = 3_600_000, limit: int = 20
    ) -> TrendReport:
        """As :meth:`LiveTrends.report`, computed by the worker."""
        result: TrendReport = self._call("report", as_of_ms, window_ms, limit)
        return result

    def sync(self, seq: int) -> int:
        """Wait until the worker has applied the store's changes up to ``seq``; its position."""
        position: int = self._call("sync", seq)
        return position

    # -- answers ---------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        filters: Filters | None = None,
        as_of: datetime | None = None,
        composer: str = "extractive",
    ) -> Iterator[AnswerEvent]:
        """As :meth:`AnswerEngine.stream`, computed by the worker's engine (its registered
        composers only). Question and filter errors raise on the first ``next``."""
        rid, box, (kind, value) = self._first_reply(
            "answer", list(messages), filters, as_of, composer
        )
        try:
            while kind != _END:
                yield value
                kind, value = self._reply(rid, box)
        finally:
            self._waiting.pop(rid, None)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker (its state is rebuilt from the store next time)."""
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            if self._alive():
                with contextlib.suppress(OSError):
                    self._conn.send((0, "stop"))
            self._conn.close()
        if not self._wait(5.0):
            self._proc.terminate()
            self._wait(5.0)

    def _wait(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


# -- the child process ---------------------------------------------------------------------


def _tune_gc() -> None:
    """The tracker holds many small long-lived containers and creates few cycles: collect the
    young generation less often, and move the rebuilt state out of the collector's sight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


class _ReadView:
    """What an :class:`AnswerEngine` reads: the store, the index and the trend state."""

    def __init__(self, store: Any, index: Any, trends: Any) -> None:
        self.store = store
        self.index = index
        self.trends = trends


def _send(conn: Connection, rid: int, kind: str, value: Any) -> None:
    """Send a reply; a value that cannot be pickled is replaced by an error naming it."""
    try:
        conn.send((rid, kind, value))
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as e:
        conn.send((rid, "err", FiresiftError(f"the read worker could not send a {kind}: {e}")))


class _ParentTrends:
    """Trend state as an answers worker sees it: each report is asked of the parent. Requests
    that arrive while waiting for it are kept for the worker's loop."""

    def __init__(self, conn: Connection, backlog: deque[tuple[Any, ...]]) -> None:
        self.conn = conn
        self.backlog = backlog

    def report(
        self, *, as_of_ms: int | None = None, window_ms: int = 3_600_000, limit: int = 20
    ) -> TrendReport:
        self.conn.send((0, "trends", (as_of_ms, window_ms, limit)))
        while True:
            message = self.conn.recv()
            if message[1] != "trends":
                self.backlog.append(message)
                continue
            status, value = message[2]
            if status == "err":
                raise value
            report: TrendReport = value
            return report


class _TrendServe:
    """The trends worker's loop (see the module docstring)."""

    def __init__(self, conn: Connection, path: Path, config: TrendConfig, poll_s: float) -> None:
        from firesift.database import LiveTrends
        from firesift.store import Store

        self.conn = conn
        self.poll_s = poll_s
        self.store = Store(path)
        self.position = self.store.last_seq()
        self.trends = LiveTrends(self.store, config)
        self.syncs: list[tuple[int, int]] = []
        _tune_gc()
        conn.send((0, "ready", None))

    def run(self) -> None:
        conn = self.conn
        while True:
            while conn.poll(0):
                if not self._take(conn.recv()):
                    return
            changes = self.store.changes_since(self.position, CHUNK)
            if changes:
                self.trends.apply_changes(changes)
                self.position = changes[-1].seq
            if self.syncs and (not changes or max(s for _, s in self.syncs) <= self.position):
                for rid, _ in self.syncs:
                    _send(conn, rid, "ok", self.position)
                self.syncs = []
            if not changes:
                conn.poll(self.poll_s)

    def _take(self, request: tuple[Any, ...]) -> bool:
        rid, kind, *args = request
        if kind == "stop":
            return False
        if kind == "sync":
            self.syncs.append((rid, int(args[0])))
        elif kind == "report":
            as_of_ms, window_ms, limit = args
            try:
                report = self.trends.report(as_of_ms=as_of_ms, window_ms=window_ms, limit=limit)
            except Exception as e:
                _send(self.conn, rid, "err", e)
            else:
                _send(self.conn, rid, "ok", report)
        else:
            _send(self.conn, rid, "err", FiresiftError(f"a trends worker cannot {kind!r}"))
        return True


class _AnswerServe:
    """The answers worker's loop: one request at a time, in arrival order."""

    def __init__(self, conn: Connection, path: Path) -> None:
        from firesift.answer.engine import AnswerEngine
        from firesift.index import TantivyIndex
        from firesift.store import Store

        self.conn = conn
        self.backlog: deque[tuple[Any, ...]] = deque()
        self.store = Store(path)
        self.index = TantivyIndex(path / "index")
        trends = _ParentTrends(conn, self.backlog)
        # The engine only reads ``store``, ``index`` and ``trends``: the view has exactly those.
        view = cast("Database", _ReadView(self.store, self.index, trends))
        self.engine = AnswerEngine(view)
        self._warm_up()
        gc.collect()
        gc.freeze()
        conn.send((0, "ready", None))

    def _warm_up(self) -> None:
        """Answer one question, discarded, so models, tables and caches are loaded before the
        first real question (which would otherwise wait a second or two for them)."""
        from firesift.answer.model import Message

        with contextlib.suppress(Exception):
            # Not a "what is happening" question: that one would wait for the trends worker.
            self.engine.answer([Message("user", "What did witnesses say about the fire?")])

    def run(self) -> None:
        while True:
            request = self.backlog.popleft() if self.backlog else self.conn.recv()
            rid, kind, *args = request
            if kind == "stop":
                return
            if kind == "answer":
                self._answer(rid, *args)
            else:
                _send(self.conn, rid, "err", FiresiftError(f"an answers worker cannot {kind!r}"))

    def _answer(
        self,
        rid: int,
        messages: list[Message],
        filters: Filters | None,
        as_of: datetime | None,
        composer: str,
    ) -> None:
        from firesift.answer.retrieve import NO_FILTERS

        self.index.refresh()
        try:
            for ev in self.engine.stream(
                messages, filters=filters or NO_FILTERS, as_of=as_of, composer=composer
            ):
                _send(self.conn, rid, "ev", ev)
        except Exception as e:
            _send(self.conn, rid, "err", e)
        else:
            _send(self.conn, rid, _END, None)


def _main(fd: int) -> None:
    conn = Connection(fd)
    try:
        role, path, config, poll_s = conn.recv()
        serve: _TrendServe | _AnswerServe
        if role == "answers":
            serve = _AnswerServe(conn, Path(path))
        else:
            serve = _TrendServe(conn, Path(path), config, poll_s)
        try:
            serve.run()
        finally:
            serve.store.close()
    except (EOFError, OSError, KeyboardInterrupt):
        return


if __name__ == "__main__":
    _main(int(sys.argv[1]))
